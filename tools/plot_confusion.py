#!/usr/bin/env python3
"""plot_confusion.py: draws a confusion matrix CSV as a PNG, with each class's accuracy beside it.

Input: the CSV that cnn and bench/torch_train.py write at the end of training: a header row of
the K class names, then K rows of K counts; row i holds the test images of true class i, column j
how many of them were predicted as class j. (A first column of row names, with an empty or
"true\\pred" top-left cell, is accepted too.) The diagonal holds the correct predictions, so class
i's accuracy (its recall) is row i's diagonal count over the row's sum.

Output: a PNG with two panels: the matrix, each row divided by its sum (the fraction of class i
predicted as j; counts written in the cells when K <= 20), and the per-class accuracy as
horizontal bars, the overall accuracy (the diagonal over the total) in the title. With many
classes (TinyImageNet's 200) the names are left off the matrix's axes and the bar panel shows the
--worst N classes (default 20; the best ones are listed on stdout too). It also prints every
class's accuracy, worst first, and with --csv PATH writes them (class,images,correct,accuracy).

    /usr/bin/python3 tools/plot_confusion.py runs/confusion.csv -o runs/confusion.png
    /usr/bin/python3 tools/plot_confusion.py runs/tiny_confusion.csv -o runs/tiny.png --worst 30

It only reads and draws. Exit status 2 with one line naming the file when the CSV is not a square
matrix of whole numbers under a header of names.
"""
import argparse
import csv
import os
import sys

PROGRAM = "plot_confusion"


def fail(message):
    print("%s: %s" % (PROGRAM, message), file=sys.stderr)
    sys.exit(2)


def read_matrix(path):
    """(class names, rows of ints) from the CSV, checked to be square."""
    try:
        with open(path, newline="") as f:
            rows = [r for r in csv.reader(f) if r and any(cell.strip() for cell in r)]
    except OSError as e:
        fail("%s: %s" % (path, e.strerror))
    if len(rows) < 2:
        fail("%s: expected a header row of class names and one row per class, found %d row(s)" % (path, len(rows)))
    header = [c.strip() for c in rows[0]]
    body = rows[1:]
    named_rows = (len(header) == len(body) + 1 and all(len(r) == len(header) for r in body) and
                  not any(_is_number(r[0]) for r in body))
    if named_rows:  # a first column of row names under an empty or "true\pred" corner
        header = header[1:]
        body = [r[1:] for r in body]
    k = len(header)
    if len(body) != k:
        fail("%s: %d class names in the header but %d rows: expected a square matrix" % (path, k, len(body)))
    matrix = []
    for i, r in enumerate(body):
        if len(r) != k:
            fail("%s: row %d has %d cells, expected %d (one per class)" % (path, i + 2, len(r), k))
        try:
            values = [int(float(c)) for c in r]
        except ValueError:
            fail("%s: row %d: '%s' is not a count" % (path, i + 2, next(c for c in r if not _is_number(c))))
        if any(v < 0 for v in values):
            fail("%s: row %d has a negative count" % (path, i + 2))
        matrix.append(values)
    return header, matrix


def _is_number(text):
    try:
        float(text)
        return True
    except ValueError:
        return False


def per_class(names, matrix):
    """[(name, images, correct, accuracy or None)] in class order."""
    out = []
    for i, row in enumerate(matrix):
        total = sum(row)
        out.append((names[i], total, row[i], row[i] / total if total else None))
    return out


def main(argv):
    p = argparse.ArgumentParser(prog=PROGRAM, description="Draw a confusion matrix CSV (header of class names, then "
                                "one row of counts per true class) as a PNG with per-class accuracy.")
    p.add_argument("csv", help="the confusion matrix CSV (cnn's or torch_train.py's)")
    p.add_argument("-o", "--output", help="the PNG to write (default: the CSV's name with .png)")
    p.add_argument("--title", help="the figure's title (default: the CSV's file name)")
    p.add_argument("--worst", type=int, default=20, help="with more than 30 classes, the bar panel shows this many "
                   "of the worst classes (default 20)")
    p.add_argument("--csv", dest="csv_out", metavar="PATH", help="also write class,images,correct,accuracy")
    args = p.parse_args(argv)
    names, matrix = read_matrix(args.csv)
    k = len(names)
    stats = per_class(names, matrix)
    total = sum(sum(r) for r in matrix)
    correct = sum(matrix[i][i] for i in range(k))
    overall = correct / total if total else 0.0

    ranked = sorted((s for s in stats if s[3] is not None), key=lambda s: (s[3], s[0]))
    print("%s: %d classes, %d images, accuracy %.4f" % (args.csv, k, total, overall))
    for name, images, right, acc in ranked:
        print("  %-32s %6d images  %6d correct  accuracy %.4f" % (name, images, right, acc))
    for name, images, _, acc in stats:
        if acc is None:
            print("  %-32s no test images" % name)
    if args.csv_out:
        with open(args.csv_out, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["class", "images", "correct", "accuracy"])
            for name, images, right, acc in stats:
                w.writerow([name, images, right, "" if acc is None else "%.6f" % acc])

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    m = np.array(matrix, dtype=np.float64)
    sums = m.sum(axis=1, keepdims=True)
    frac = np.divide(m, sums, out=np.zeros_like(m), where=sums > 0)
    many = k > 30
    bars = ranked[:args.worst] if many else [s for s in stats if s[3] is not None]
    side = min(14.0, max(6.0, 0.45 * k)) if not many else 9.0
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(side + 6.0, side), gridspec_kw={"width_ratios": [side, 5.0]})
    im = ax.imshow(frac, cmap="Blues", vmin=0.0, vmax=1.0, interpolation="nearest")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="fraction of the true class")
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    if not many:
        ax.set_xticks(range(k))
        ax.set_yticks(range(k))
        ax.set_xticklabels(names, rotation=60, ha="right", fontsize=8)
        ax.set_yticklabels(names, fontsize=8)
    if k <= 20:
        for i in range(k):
            for j in range(k):
                if matrix[i][j]:
                    ax.text(j, i, str(matrix[i][j]), ha="center", va="center", fontsize=7,
                            color="white" if frac[i, j] > 0.5 else "black")
    ax.set_title("confusion matrix (rows sum to 1)")

    y = list(range(len(bars)))
    bx.barh(y, [s[3] for s in bars], color="tab:blue")
    bx.set_yticks(y)
    bx.set_yticklabels([s[0] for s in bars], fontsize=8)
    bx.invert_yaxis()
    bx.set_xlim(0.0, 1.0)
    bx.axvline(overall, color="tab:red", linestyle="--", linewidth=1, label="overall %.4f" % overall)
    bx.set_xlabel("accuracy (correct / images of the class)")
    bx.set_title("the %d worst classes" % len(bars) if many else "per-class accuracy")
    bx.legend(loc="lower right", fontsize=8)
    for yi, s in zip(y, bars):
        bx.text(min(s[3] + 0.01, 0.9), yi, "%.3f" % s[3], va="center", fontsize=7)
    fig.suptitle("%s: %d images, %d classes, accuracy %.4f" % (args.title or os.path.basename(args.csv), total, k, overall))
    fig.tight_layout()
    out = args.output or os.path.splitext(args.csv)[0] + ".png"
    fig.savefig(out, dpi=110, bbox_inches="tight")
    print("wrote %s" % out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
