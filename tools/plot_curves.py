#!/usr/bin/env python3
"""plot_curves.py: training curves from cgrad's CSV logs, several runs overlaid in one PNG.

A 2x2 figure: loss and accuracy against the epoch (top) and against wall-clock seconds (bottom),
one colour per run, test curves dashed (test top-5 accuracy, when logged, dotted). The seconds
axes are logarithmic by default, so that a run 50 times faster than another (a GPU beside a CPU)
is not squashed against the left edge (--linear-time for plain seconds; --log-x puts the epoch
axes on a log scale too). The figure always has a title: --title, else one made from the runs'
names. When a log has the GPU columns that --monitor adds
(gpu_util, gpu_mem_mib, gpu_temp_c, gpu_power_w) with at least one value, two more rows plot
them against seconds: utilisation, memory, temperature, power (--no-monitor leaves them out).
When a log has the mixed-precision columns that --precision adds (precision, loss_scale,
skipped_steps), one more row plots the loss scale (log scale) and the skipped steps per epoch,
and the precision joins the device in the legend.
It reads logs; it does not run or compare anything else.

Input: CSV files with a header row. Needed columns: epoch, seconds, and at least one of
loss, train_loss, test_loss, accuracy, train_accuracy, test_accuracy. A device column, when
present, is shown in the legend. Other columns (images_per_s, ...) are ignored; empty cells
(a GPU column of a CPU run) are gaps.
    simple_nn:  epoch,loss,accuracy,seconds,device[,gpu_util,gpu_mem_mib,gpu_temp_c,gpu_power_w]
    cnn:        epoch,train_loss,train_accuracy,test_loss,test_accuracy,test_top5,seconds,images_per_s,
                device,lr[,gpu_...] (logs of older cnn builds, without test_top5 and lr, too)
    either, with --precision: ...,device,precision,loss_scale,skipped_steps[,gpu_...]

Run it with Debian's interpreter, which has matplotlib:
    /usr/bin/python3 tools/plot_curves.py runs/simple_nn_cpu.csv runs/simple_nn_cuda.csv -o runs/simple_nn.png
"""
import argparse
import csv
import importlib.util
import math
import os
import sys

PROGRAM = "plot_curves"
NEEDED = ("epoch", "seconds")
# Columns drawn on each row of the figure, in legend order; the test_ ones are dashed.
LOSS_COLUMNS = ("loss", "train_loss", "test_loss")
ACCURACY_COLUMNS = ("accuracy", "train_accuracy", "test_accuracy", "test_top5")
# The GPU counters of --monitor (each epoch's mean of NVML samples) and their axis labels.
MONITOR_COLUMNS = {
    "gpu_util": "GPU utilisation (%)",
    "gpu_mem_mib": "GPU memory used (MiB)",
    "gpu_temp_c": "GPU temperature (C)",
    "gpu_power_w": "GPU power (W)",
}
# The loss scaler's columns of --precision (read once an epoch) and their axis labels.
AMP_COLUMNS = {"loss_scale": "loss scale", "skipped_steps": "skipped steps (total)"}


class LogError(Exception):
    """A problem with an input file, reported as one line and exit status 1."""


class Run:
    """One CSV log: its legend name and its columns as lists of floats (NaN where a cell is empty)."""

    def __init__(self, path, name, device, columns):
        self.path = path
        self.name = name
        self.device = device
        self.columns = columns

    def label(self):
        return f"{self.name} ({self.device})" if self.device else self.name


def read_run(path, name):
    """Reads one log. Raises LogError naming the file, and the line where a value is bad."""
    if not os.path.exists(path):
        raise LogError(f"{path}: no such file")
    if os.path.isdir(path):
        raise LogError(f"{path}: is a directory, expected a CSV file")
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise LogError(f"{path}: cannot read: {e}") from None
    rows = [r for r in rows if any(cell.strip() for cell in r)]  # blank lines carry nothing
    if not rows:
        raise LogError(f"{path}: empty file, expected a header row such as 'epoch,loss,accuracy,seconds,device'")
    header = [h.strip() for h in rows[0]]
    missing = [c for c in NEEDED if c not in header]
    if missing:
        raise LogError(f"{path}: no column {' or '.join(missing)} in header '{','.join(header)}'")
    plotted = [c for c in LOSS_COLUMNS + ACCURACY_COLUMNS if c in header]
    if not plotted:
        raise LogError(f"{path}: no loss or accuracy column in header '{','.join(header)}' "
                       f"(expected one of {', '.join(LOSS_COLUMNS + ACCURACY_COLUMNS)})")
    if len(rows) < 2:
        raise LogError(f"{path}: header only, no rows (did the run stop before its first epoch?)")

    monitored = [c for c in MONITOR_COLUMNS if c in header] + [c for c in AMP_COLUMNS if c in header]
    index = {c: header.index(c) for c in NEEDED + tuple(plotted) + tuple(monitored)}
    columns = {c: [] for c in index}
    devices = []
    device_at = header.index("device") if "device" in header else None
    precision_at = header.index("precision") if "precision" in header else None
    for line, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            raise LogError(f"{path}:{line}: {len(row)} fields, the header has {len(header)}")
        for c, i in index.items():
            cell = row[i].strip()
            try:
                value = float(cell) if cell else math.nan
            except ValueError:
                raise LogError(f"{path}:{line}: column {c}: '{cell}' is not a number") from None
            if c in NEEDED and math.isnan(value):
                raise LogError(f"{path}:{line}: column {c} is empty")
            columns[c].append(value)
        if device_at is not None and row[device_at].strip() not in devices:
            devices.append(row[device_at].strip())
        if precision_at is not None and row[precision_at].strip() not in devices:
            devices.append(row[precision_at].strip())
    return Run(path, name, ", ".join(d for d in devices if d), columns)


def parse_args(argv):
    p = argparse.ArgumentParser(
        prog=PROGRAM,
        description="Plot loss and accuracy against epochs and wall-clock seconds from cgrad CSV logs "
                    "(one line per run, test curves dashed) into one PNG.",
        epilog="example: /usr/bin/python3 tools/plot_curves.py runs/cnn_cpu.csv runs/cnn_cuda.csv "
               "--title 'CNN on Fashion-MNIST' -o runs/cnn.png")
    p.add_argument("logs", nargs="+", metavar="CSV", help="training logs written with --log")
    p.add_argument("-o", "--output", default="curves.png", help="PNG to write (default: curves.png)")
    p.add_argument("--label", action="append", default=[], metavar="NAME",
                   help="legend name of a run, given once per CSV in the same order "
                        "(default: the file name without its extension)")
    p.add_argument("--title", default=None,
                   help="title above the panels (default: the runs' names, e.g. 'simple_nn_cpu (cpu) and simple_nn_cuda (cuda:0)')")
    p.add_argument("--log-x", action="store_true",
                   help="logarithmic x axes everywhere, the epoch axes included")
    p.add_argument("--linear-time", action="store_true",
                   help="plain (linear) seconds axes instead of the default logarithmic ones")
    p.add_argument("--dpi", type=int, default=100,
                   help="resolution of the PNG (default: 100; the figure is 10 in wide, 3.5 in per row of panels)")
    p.add_argument("--no-monitor", action="store_true",
                   help="leave out the GPU rows even when the logs have gpu_ columns")
    a = p.parse_args(argv)
    if a.log_x and a.linear_time:
        p.error("--log-x and --linear-time contradict each other: give one")
    if a.label and len(a.label) != len(a.logs):
        p.error(f"--label given {len(a.label)} times for {len(a.logs)} CSV files: give it once per file, or not at all")
    if a.dpi < 20 or a.dpi > 600:
        p.error(f"--dpi {a.dpi} is outside 20..600")
    return a


def has_monitor_values(run):
    """True when the run logged at least one GPU counter (a CPU run's gpu_ columns are empty)."""
    return any(not math.isnan(v) for c in MONITOR_COLUMNS if c in run.columns for v in run.columns[c])


def default_title(runs):
    """'Training curves: A (cpu) and B (cuda:0)' from the runs' legend labels."""
    labels = [run.label() for run in runs]
    if len(labels) > 3:
        return f"Training curves: {', '.join(labels[:3])} and {len(labels) - 3} more"
    joined = labels[0] if len(labels) == 1 else ", ".join(labels[:-1]) + " and " + labels[-1]
    return f"Training curves: {joined}"


def set_x_scale(ax, x_column, log_x, log_time):
    """A log x axis for seconds (unless linear_time) or for everything with --log-x."""
    if (x_column == "seconds" and log_time) or log_x:
        ax.set_xscale("log")


def draw(runs, output, title, dpi, monitor=True, log_x=False, log_time=True):
    import matplotlib
    matplotlib.use("Agg")  # files only, no display needed
    import matplotlib.pyplot as plt

    monitor = monitor and any(has_monitor_values(run) for run in runs)
    amp = any("loss_scale" in run.columns for run in runs)
    rows = 2 + (2 if monitor else 0) + (1 if amp else 0)
    fig, axes = plt.subplots(rows, 2, figsize=(10, 3.5 * rows), squeeze=False)
    panels = [  # (row, col, x column, the y columns it may draw, y label)
        (0, 0, "epoch", LOSS_COLUMNS, "loss"),
        (0, 1, "epoch", ACCURACY_COLUMNS, "accuracy"),
        (1, 0, "seconds", LOSS_COLUMNS, "loss"),
        (1, 1, "seconds", ACCURACY_COLUMNS, "accuracy"),
    ]
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for r, c, x_column, y_columns, y_label in panels:
        ax = axes[r][c]
        for k, run in enumerate(runs):
            present = [y for y in y_columns if y in run.columns]
            for y in present:
                # Name the series only when a run has more than one on this panel (train and test).
                suffix = "" if len(present) == 1 else " " + ("test top-5" if y == "test_top5" else y.split("_")[0])
                few = len(run.columns[x_column]) <= 30
                style = ":" if y == "test_top5" else "--" if y.startswith("test_") else "-"
                ax.plot(run.columns[x_column], run.columns[y], color=colours[k % len(colours)],
                        linestyle=style, marker="." if few else None,
                        linewidth=1.5, label=run.label() + suffix)
        set_x_scale(ax, x_column, log_x, log_time)
        log_here = ax.get_xscale() == "log"
        ax.set_xlabel(("epoch" if x_column == "epoch" else "wall-clock seconds since start")
                      + (" (log scale)" if log_here else ""))
        ax.set_ylabel(y_label)
        ax.set_title(f"{y_label} vs {'epoch' if x_column == 'epoch' else 'time'}", fontsize=10)
        ax.grid(True, alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=8)
        else:
            ax.text(0.5, 0.5, f"no {y_label} column", ha="center", va="center", transform=ax.transAxes)
    if monitor:  # rows 3 and 4: the GPU counters against time, one line per run that has them
        for k, (column, y_label) in enumerate(MONITOR_COLUMNS.items()):
            ax = axes[2 + k // 2][k % 2]
            for j, run in enumerate(runs):
                values = run.columns.get(column)
                if values is None or all(math.isnan(v) for v in values):
                    continue
                few = len(values) <= 30
                ax.plot(run.columns["seconds"], values, color=colours[j % len(colours)], marker="." if few else None,
                        linewidth=1.5, label=run.label())
            set_x_scale(ax, "seconds", log_x, log_time)
            ax.set_xlabel("wall-clock seconds since start" + (" (log scale)" if ax.get_xscale() == "log" else ""))
            ax.set_ylabel(y_label)
            ax.set_title(f"{y_label.split(' (')[0]} vs time (mean per epoch)", fontsize=10)
            ax.grid(True, alpha=0.3)
            if ax.lines:
                ax.legend(fontsize=8)
            else:
                ax.text(0.5, 0.5, f"no {column} values", ha="center", va="center", transform=ax.transAxes)
    if amp:  # the last row: the loss scale and the skipped steps against the epoch
        for k, (column, y_label) in enumerate(AMP_COLUMNS.items()):
            ax = axes[rows - 1][k]
            for j, run in enumerate(runs):
                values = run.columns.get(column)
                if values is None:
                    continue
                ax.plot(run.columns["epoch"], values, color=colours[j % len(colours)],
                        marker="." if len(values) <= 30 else None, linewidth=1.5, label=run.label())
            if column == "loss_scale":
                ax.set_yscale("log", base=2)
            set_x_scale(ax, "epoch", log_x, log_time)
            ax.set_xlabel("epoch" + (" (log scale)" if ax.get_xscale() == "log" else ""))
            ax.set_ylabel(y_label)
            ax.set_title(f"{y_label.split(' (')[0]} vs epoch (read at its end)", fontsize=10)
            ax.grid(True, alpha=0.3)
            if ax.lines:
                ax.legend(fontsize=8)
    fig.suptitle(title or default_title(runs))
    fig.tight_layout()
    fig.savefig(output, dpi=dpi)
    plt.close(fig)


def main(argv=None):
    a = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        names = a.label or [os.path.splitext(os.path.basename(p))[0] for p in a.logs]
        runs = [read_run(path, name) for path, name in zip(a.logs, names)]
        out_dir = os.path.dirname(os.path.abspath(a.output))
        if not os.path.isdir(out_dir):
            raise LogError(f"{a.output}: the folder {out_dir} does not exist")
    except LogError as e:
        print(f"{PROGRAM}: error: {e}", file=sys.stderr)
        return 1
    if importlib.util.find_spec("matplotlib") is None:  # checked here so that the message can say what to do
        print(f"{PROGRAM}: error: this Python ({sys.executable}) has no matplotlib; run it with /usr/bin/python3 "
              "(Debian: apt install python3-matplotlib)", file=sys.stderr)
        return 1
    try:
        draw(runs, a.output, a.title, a.dpi, monitor=not a.no_monitor, log_x=a.log_x, log_time=not a.linear_time)
    except (OSError, ValueError) as e:
        print(f"{PROGRAM}: error: cannot write {a.output}: {e}", file=sys.stderr)
        return 1
    print(f"{PROGRAM}: wrote {a.output} ({len(runs)} run{'s' if len(runs) != 1 else ''})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
