// anomaly.h: anomaly detection, as torch.autograd.set_detect_anomaly: when it is on, the output of
// every op's forward and the gradients of every op's backward are copied to the host and checked
// for NaN and infinities, and the first op found with one is remembered, so that a training run
// that diverges can say where the first non-finite number came from. It slows every op down (a
// device-to-host copy and a scan each) and cannot run inside a captured CUDA Graph: a diagnostic,
// off by default. It stops nothing itself; the training loop reads the report (examples/common/guard.h).
#ifndef CG_ANOMALY_H
#define CG_ANOMALY_H

#include "core/tape.h"

// Turn the checks on or off, for every tape of the process. Off: the hooks cost one branch.
void cg_anomaly_enable(bool on);
bool cg_anomaly_enabled(void);

// Forget the op remembered (at the start of each training step).
void cg_anomaly_reset(void);

// The first op with a non-finite output since the last reset: true, with one line such as
// "forward of conv2d (op 1 of the step): output (128, 32, 28, 28) f32 holds 5 NaN and 0 infinite
// values" in buf; false when none was found.
bool cg_anomaly_report(char *buf, size_t size);

// The hooks, called through core/tape.h's cg_tape_after_forward / _backward when the checks are on: after node's forward has written
// node->out (index: its position among the step's ops, from 1), and after its backward has added
// to its inputs' gradients.
void cg_anomaly_after_forward(const cg_node *node, int index);
void cg_anomaly_after_backward(const cg_node *node, int index);

#endif
