#!/usr/bin/env python3
"""check_safetensors.py: loads a checkpoint written by cgrad (core/checkpoint.c) into PyTorch's
SimpleNN with model.load_state_dict and prints the outputs on a fixed input. It does not run cgrad,
and no ctest runs it (the C tests never need Python).

    build/test_checkpoint --export /tmp/simple_nn.safetensors
    /usr/bin/python3 tests/reference/check_safetensors.py /tmp/simple_nn.safetensors [--pure]

The tensors are read with safetensors.torch.load_file when the safetensors package is installed,
otherwise (or with --pure) with the small reader below, built on json, struct and torch.frombuffer,
which checks the layout rules of the format (https://github.com/huggingface/safetensors, README).
The metadata is always read by that reader. When it holds "cgrad.outputs" (test_checkpoint
--export writes cgrad's outputs on the same input there), the two are compared and the script
exits 1 if any differs by more than 1e-5.

The fixed input X (4, 20) is X[i][j] = ((7 i + 3 j) mod 9 - 4) / 4: quarters, exact in float32.
"""
import json
import struct
import sys

import torch

from make_simple_nn_fixture import SimpleNN  # the same model the reference fixture is made from

TOLERANCE = 1e-5


def fixed_input():
    rows = [[((7 * i + 3 * j) % 9 - 4) / 4 for j in range(20)] for i in range(4)]
    return torch.tensor(rows, dtype=torch.float32)


def read_safetensors(path):
    """(tensors, metadata) of a safetensors file of F32 tensors, every layout rule checked.
    Raises ValueError naming what is wrong. Assumes a little-endian machine, as torch.frombuffer
    reads native byte order."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 8:
        raise ValueError(f"{path}: {len(data)} bytes, fewer than the 8 of the header length")
    (n,) = struct.unpack("<Q", data[:8])
    if n > len(data) - 8:
        raise ValueError(f"{path}: header length {n} larger than the {len(data) - 8} bytes after it")
    text = data[8:8 + n].decode("utf-8")
    if not text.startswith("{"):
        raise ValueError(f"{path}: the header is not a JSON object")
    pairs = json.loads(text, object_pairs_hook=lambda kv: kv)  # keep repeated keys to find them
    names = [k for k, _ in pairs]
    if len(set(names)) != len(names):
        raise ValueError(f"{path}: a name appears twice in the header")
    header = dict(pairs)
    metadata = dict(header.pop("__metadata__", []) or [])
    body = data[8 + n:]
    entries = []
    for name, info in header.items():
        info = dict(info)
        if info.get("dtype") != "F32":
            raise ValueError(f"{path}: tensor {name!r} is {info.get('dtype')}; this reader knows F32 only")
        shape, (begin, end) = info["shape"], info["data_offsets"]
        numel = 1
        for d in shape:
            numel *= d
        if not 0 <= begin <= end <= len(body) or end - begin != 4 * numel:
            raise ValueError(f"{path}: tensor {name!r}: data_offsets [{begin}, {end}] do not fit "
                             f"shape {shape} of F32 in {len(body)} bytes of data")
        entries.append((begin, end, name, shape))
    expected = 0
    for begin, end, name, _ in sorted(entries):
        if begin != expected:
            raise ValueError(f"{path}: tensor {name!r} starts at {begin}, expected {expected} "
                             "(an overlap or a gap)")
        expected = end
    if expected != len(body):
        raise ValueError(f"{path}: {len(body) - expected} bytes of data belong to no tensor")
    tensors = {}
    for begin, end, name, shape in entries:
        if begin == end:
            tensors[name] = torch.empty(shape, dtype=torch.float32)
        else:
            flat = torch.frombuffer(bytearray(body[begin:end]), dtype=torch.float32)
            tensors[name] = flat.reshape(shape)
    return tensors, metadata


def main():
    args = [a for a in sys.argv[1:] if a != "--pure"]
    if len(args) != 1:
        print(__doc__)
        return 2
    path = args[0]
    pure = "--pure" in sys.argv[1:]
    _, metadata = read_safetensors(path)
    try:
        if pure:
            raise ImportError
        from safetensors.torch import load_file
        import safetensors
        state = load_file(path)
        reader = f"safetensors.torch.load_file (safetensors {safetensors.__version__})"
    except ImportError:
        state, _ = read_safetensors(path)
        reader = "the pure-Python reader (json + struct + torch.frombuffer)"
    print(f"read {path} with {reader}")
    print(f"metadata: {metadata}")
    for name, t in state.items():
        print(f"  {name}: {tuple(t.shape)} {t.dtype}")

    torch.set_num_threads(1)
    model = SimpleNN()
    model.load_state_dict(state)  # strict: every name and shape must match
    model.eval()
    with torch.no_grad():
        outputs = model(fixed_input()).flatten().tolist()
    print("PyTorch outputs:", " ".join(f"{v:.9g}" for v in outputs))

    if "cgrad.outputs" not in metadata:
        return 0
    cgrad = [float(v) for v in metadata["cgrad.outputs"].split(",")]
    print("cgrad outputs:  ", " ".join(f"{v:.9g}" for v in cgrad))
    worst = max(abs(a - b) for a, b in zip(outputs, cgrad))
    same = len(cgrad) == len(outputs) and worst <= TOLERANCE
    print(f"largest difference {worst:.3g}: {'OK' if same else 'MISMATCH'} (tolerance {TOLERANCE:g})")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
