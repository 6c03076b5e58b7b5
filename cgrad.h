// cgrad.h: everything a training program needs, in one include.
#ifndef CGRAD_H
#define CGRAD_H

#include "core/train/amp.h"
#include "core/arena.h"
#include "core/train/checkpoint.h"
#include "core/train/clip.h"
#include "core/common.h"
#include "core/train/csv_log.h"
#include "core/device.h"
#include "core/train/metrics.h"
#include "core/ops.h"
#include "core/train/optim.h"
#include "core/train/schedule.h"
#include "core/params.h"
#include "core/rng.h"
#include "core/tape.h"
#include "core/tensor.h"
#include "datasets/catalog.h"
#include "datasets/cifar.h"
#include "datasets/idx.h"
#include "datasets/image_folder.h"
#include "datasets/loader.h"
#include "datasets/synthetic.h"
#include "layers/activation.h"
#include "layers/conv.h"
#include "layers/linear.h"
#include "layers/loss.h"
#include "layers/norm.h"
#include "layers/sequential.h"

#endif
