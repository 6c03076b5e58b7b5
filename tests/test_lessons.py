#!/usr/bin/python3
"""test_lessons.py: the lessons show what the programs print. Two checks, run by ctest:

  outputs (default)  Every block of a lesson (lessons/*.md) or of its answers (lessons/answers/*.md)
                     that shows commands with their output (lines starting with "$ ", the output
                     under each) is run, in the lesson's order, in a scratch copy of the
                     repository whose build/ is the real build folder, and what the commands
                     print is compared with the block, line by line, number by number.
  --french           Each lesson in lessons/fr/ (and lessons/fr/reponses/ for the answers) shows
                     the same commands, the same code, the same outputs and the same numbers as
                     its English twin of the same file name; every English lesson has one.

How a block is compared. Lines are compared as text with every number taken out (whitespace
runs count as one space), then number by number. By default a number must be equal, except a
number followed by a unit of time or speed (s, ms, us, images/s, img/s, it/s, TFLOPS, GFLOP/s,
TOPS), which may be anything: timings change from machine to machine and run to run. An
expected line "..." stands for any number of lines. An HTML comment on the line before a block
says more, several directives separated by ";":

  <!-- check: skip WHY -->            not run (WHY is shown)
  <!-- check: gpu -->                 run only with --gpu (on a machine with a GPU)
  <!-- check: nogpu -->               what a machine without a GPU prints: not run where
                                      `nvidia-smi -L` lists one
  <!-- check: long -->                run only with --long (trains for minutes)
  <!-- check: needs torch -->         not run when /usr/bin/python3 lacks torch (also: matplotlib,
                                      fashion-mnist: /usr/share/datasets/fashion-mnist; cifar10:
                                      data/cifar-10-batches-bin holding the binary files made from
                                      the public JPEG copy, bench/README.md)
  <!-- check: file runs/move.c -->    not a command: its text is written to that file first
  <!-- check: ignore REGEX -->        lines matching REGEX (Python re.search) are left out on both
                                      sides: machine names, memory sizes, the build's options
  <!-- check: num REGEX S1 S2 ... --> on lines matching REGEX, the k-th number is compared with
                                      spec Sk (numbers past the list: the default), where a spec
                                      is = (equal), * (anything), rX (within X relative), aX
                                      (within X absolute), fX (within a factor X)
  <!-- check: tol S -->               the spec of every other number of the block (default =)

Options: --build DIR (default ./build), --lessons DIR (default ./lessons), --only TEXT (files
whose name contains TEXT), --long, --gpu, --long-only (only the long blocks: the separate ctest,
skipped unless CGRAD_LESSONS_LONG=1), --keep DIR (the scratch folder, kept), --list.
Exit status 0 when everything compared is equal, 1 otherwise, 77 when nothing was to be run.
Run it with /usr/bin/python3 from the repository's root (ctest does).
"""
import argparse
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time

# A number, its sign (+ or -) included: a printed difference ("int8 - fp32: -0.14 points") may come
# out with the other sign within its tolerance.
NUMBER_SIMPLE = re.compile(r"(?<![\w.])[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")
TIMING_UNIT = re.compile(r"\s*(?:s\b|ms\b|us\b|images/s|img/s|it/s|TFLOPS|TOPS|GFLOP/s|GFLOPS)")
FENCE = re.compile(r"^(\s*)```(\S*)\s*$")
DIRECTIVE = re.compile(r"^\s*<!--\s*check:(.*?)-->\s*$")


class Block:
    """A fenced code block of a lesson, with the directives of the comment before it."""

    def __init__(self, path, line, lang, lines, directives):
        self.path, self.line, self.lang, self.lines = path, line, lang, lines
        self.skip = self.gpu = self.long = self.nogpu = None
        self.file = None
        self.ignore, self.nums, self.tol, self.needs = [], [], "=", []
        for d in directives:
            self.parse(d)

    def where(self):
        return f"{self.path}:{self.line}"

    def parse(self, text):
        if text.split()[:1] == ["skip"]:  # free text: apostrophes allowed
            self.skip = text.strip()[4:].strip() or "no reason given"
            return
        try:
            words = shlex.split(text)
        except ValueError as e:
            raise SystemExit(f"{self.where()}: cannot read check directive '{text.strip()}': {e}")
        if not words:
            return
        key, args = words[0], words[1:]
        if key == "skip":
            self.skip = " ".join(args) or "no reason given"
        elif key == "gpu":
            self.gpu = True
        elif key == "long":
            self.long = True
        elif key == "nogpu":
            self.nogpu = True
        elif key == "file" and len(args) == 1:
            self.file = args[0]
        elif key == "ignore" and len(args) == 1:
            self.ignore.append(re.compile(args[0]))
        elif key == "num" and len(args) >= 2:
            self.nums.append((re.compile(args[0]), args[1:]))
        elif key == "tol" and len(args) == 1:
            self.tol = args[0]
        elif key == "needs" and args:
            self.needs.extend(args)
        else:
            raise SystemExit(f"{self.where()}: bad check directive '{text.strip()}'")
        for spec in [self.tol] + [s for _, specs in self.nums for s in specs]:
            if not re.fullmatch(r"[=*]|[raf]\d+(\.\d+)?(e-?\d+)?", spec):
                raise SystemExit(f"{self.where()}: bad number spec '{spec}' in '{text.strip()}'")

    def commands_and_expected(self):
        """The shell commands ("$ " lines, continued after a trailing backslash) and the output."""
        commands, expected, continuing = [], [], False
        for line in self.lines:
            if continuing:
                commands[-1] += "\n" + line
                continuing = line.endswith("\\")
            elif line.startswith("$ "):
                commands.append(line[2:])
                continuing = line.endswith("\\")
            else:
                expected.append(line)
        return commands, expected

    def is_output_block(self):
        return any(line.startswith("$ ") for line in self.lines)


def read_blocks(path):
    """Every fenced block of a Markdown file, with the check directives just above it."""
    blocks, directives, inside = [], [], None
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    for i, line in enumerate(lines, start=1):
        if inside is not None:
            m = FENCE.match(line)
            if m and m.group(2) == "":
                blocks.append(Block(path, inside[0], inside[1], inside[2], inside[3]))
                inside = None
            else:
                inside[2].append(line[len(inside[4]):] if line.startswith(inside[4]) else line)
            continue
        m = FENCE.match(line)
        if m:
            inside = (i, m.group(2), [], directives, m.group(1))
            directives = []
            continue
        d = DIRECTIVE.match(line)
        if d:
            directives.extend(part for part in split_directives(d.group(1)))
        elif line.strip():
            directives = []
    if inside is not None:
        raise SystemExit(f"{path}:{inside[0]}: code block never closed")
    return blocks


def split_directives(text):
    """'a; b "x;y"' -> ['a', 'b "x;y"']: semicolons outside quotes separate directives."""
    parts, cur, quote = [], "", None
    for ch in text:
        if quote:
            cur += ch
            if ch == quote:
                quote = None
        elif ch in "\"'":
            quote = ch
            cur += ch
        elif ch == ";":
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    return [p.strip() for p in parts if p.strip()]


# ---- comparing outputs ---------------------------------------------------------------------

def numbers_of(line):
    """[(value text, is timing)] of a line, and its skeleton (numbers as '#', spaces collapsed)."""
    found, skeleton, last = [], "", 0
    for m in NUMBER_SIMPLE.finditer(line):
        timing = bool(TIMING_UNIT.match(line, m.end()))
        found.append((m.group(0), timing))
        skeleton += line[last:m.start()] + "#"
        last = m.end()
    skeleton += line[last:]
    return found, " ".join(skeleton.split())


def number_ok(spec, want, got):
    if spec == "*":
        return True
    w, g = float(want), float(got)
    if spec == "=":
        return w == g
    x = float(spec[1:])
    if spec[0] == "r":
        return abs(g - w) <= x * max(abs(w), 1e-300)
    if spec[0] == "a":
        return abs(g - w) <= x
    if spec[0] == "f":  # within a factor: same sign, ratio in [1/x, x]; 0 only matches 0
        if w == 0 or g == 0:
            return w == g
        return (w > 0) == (g > 0) and 1 / x <= g / w <= x
    return False


def compare_line(block, want, got):
    """None when `got` matches the expected line `want`, else a reason."""
    wn, ws = numbers_of(want)
    gn, gs = numbers_of(got)
    if ws != gs or len(wn) != len(gn):
        return "text differs"
    specs = []
    for pattern, s in block.nums:
        if pattern.search(want):
            specs = s
            break
    for k, ((wv, timing), (gv, _)) in enumerate(zip(wn, gn)):
        spec = specs[k] if k < len(specs) else ("*" if timing else block.tol)
        if not number_ok(spec, wv, gv):
            return f"number {k + 1}: {gv} where the lesson has {wv} (spec {spec})"
    return None


# The line a CPU kernel prints the first time it picks its hardware path ("cgrad: bf16 on the CPU:
# AMX-BF16 tiles ...", "cgrad: int8 on the CPU: ..."): it depends on the CPU the test runs on, so it
# is left out on both sides of every block.
HARDWARE_PATH = re.compile(r"^cgrad: (bf16|int8) on the CPU: ")
# The line cnn prints after an epoch in which its thread tuner timed both thread counts ("thread
# tuning: 1 thread, ..."): it appears when another program is using the CPU, so it depends on the
# machine's load while the test runs; left out on both sides too.
THREAD_TUNING = re.compile(r"^thread tuning: ")


def compare(block, expected, actual):
    """None when the output matches the block, else a few lines saying where it does not."""
    keep = lambda line: (line.strip() != "" and not any(p.search(line) for p in block.ignore)
                         and not HARDWARE_PATH.search(line) and not THREAD_TUNING.search(line))
    want = [l.rstrip() for l in expected if keep(l)]
    got = [l.rstrip() for l in actual if keep(l)]
    i = j = 0
    while i < len(want):
        if want[i].strip() == "...":
            i += 1
            if i == len(want):
                return None  # the rest of the output is left out
            while j < len(got) and compare_line(block, want[i], got[j]) is not None:
                j += 1
            if j == len(got):
                return f"no line like\n    {want[i]}\n  after a '...' of the lesson"
            continue
        if j >= len(got):
            return f"the output ends where the lesson has\n    {want[i]}"
        why = compare_line(block, want[i], got[j])
        if why:
            return f"{why}:\n    lesson: {want[i]}\n    output: {got[j]}"
        i += 1
        j += 1
    if j < len(got):
        return f"the output goes on where the lesson ends:\n    {got[j]}"
    return None


# ---- running ----------------------------------------------------------------------------------

def have(what):
    if what in ("torch", "matplotlib", "numpy"):
        return subprocess.run(["/usr/bin/python3", "-c", f"import {what}"], capture_output=True).returncode == 0
    if what == "fashion-mnist":
        return os.path.isdir("/usr/share/datasets/fashion-mnist")
    if what == "cifar10":  # the binary files lesson 07 was run on (bench/README.md, "Real data")
        return cifar10_is_lessons_copy()
    raise SystemExit(f"unknown need '{what}'")


# SHA-256 of test_batch.bin as tools/cifar_jpeg_to_binary.py writes it from the public JPEG copy
# (bench/README.md): lesson 07's figures come from these pixels, not from the original files.
CIFAR10_TEST_SHA256 = "2696e48ae3fe74d50ecaacc0b8092b89bf95cd3f6471d079f4cbd39a956c18c3"
CIFAR10_DIR = "data/cifar-10-batches-bin"  # cnn's default --data for cifar10


def cifar10_is_lessons_copy():
    import hashlib
    path = os.path.join(CIFAR10_DIR, "test_batch.bin")
    if not os.path.isfile(path):
        return False
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest() == CIFAR10_TEST_SHA256


def gpu_present():
    try:
        p = subprocess.run(["nvidia-smi", "-L"], capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return p.returncode == 0 and b"GPU" in p.stdout


def make_scratch(root, build, keep):
    """A folder that looks like the repository: its top-level entries linked, build/ the real one."""
    work = keep or tempfile.mkdtemp(prefix="cgrad-lessons-")
    os.makedirs(work, exist_ok=True)
    for name in os.listdir(root):
        if name in ("build", "runs", ".git") or name.startswith("."):
            continue
        dst = os.path.join(work, name)
        if not os.path.lexists(dst):
            os.symlink(os.path.join(root, name), dst)
    if not os.path.lexists(os.path.join(work, "build")):
        os.symlink(os.path.abspath(build), os.path.join(work, "build"))
    os.makedirs(os.path.join(work, "runs"), exist_ok=True)
    return work


def run_block(block, work, timeout):
    commands, expected = block.commands_and_expected()
    script = "\n".join(commands) + "\n"
    # Open MPI refuses to run as root (CI does) unless told; lesson 06's mpirun blocks need it.
    env = dict(os.environ, PYTHONUNBUFFERED="1", LC_ALL="C", OMPI_ALLOW_RUN_AS_ROOT="1",
               OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    start = time.time()
    try:
        p = subprocess.run(["stdbuf", "-oL", "-eL", "bash", "-c", script], cwd=work, env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout)
    except subprocess.TimeoutExpired:
        return f"still running after {timeout} s", time.time() - start
    actual = p.stdout.decode("utf-8", "replace").split("\n")
    return compare(block, expected, actual), time.time() - start


def check_outputs(a):
    root = os.path.abspath(".")
    files = lesson_files(a.lessons, "answers")
    if a.only:
        files = [f for f in files if a.only in os.path.basename(f)]
    if not os.path.isdir(a.build):
        print(f"test_lessons: no build folder {a.build} (build first, or give --build)")
        return 1
    work = make_scratch(root, a.build, a.keep)
    failures, ran, skipped = 0, 0, []
    total = time.time()
    try:
        for path in files:
            for block in read_blocks(path):
                if block.file:
                    target = os.path.join(work, block.file)
                    os.makedirs(os.path.dirname(target), exist_ok=True)
                    with open(target, "w", encoding="utf-8") as f:
                        f.write("\n".join(block.lines) + "\n")
                    continue
                if not block.is_output_block():
                    continue
                rel = os.path.relpath(block.path, root)
                where = f"{rel}:{block.line}"
                reason = None
                if block.skip:
                    reason = block.skip
                elif block.gpu and not a.gpu:
                    reason = "needs a GPU (--gpu)"
                elif block.nogpu and gpu_present():
                    reason = "shows a machine without a GPU, and this one has one"
                elif block.long and not (a.long or a.long_only):
                    reason = "trains for minutes (--long, or CGRAD_LESSONS_LONG=1 for test_lessons_long)"
                elif a.long_only and not block.long:
                    continue
                else:
                    missing = [n for n in block.needs if not have(n)]
                    if missing:
                        reason = "this machine lacks " + ", ".join(missing)
                if a.list:
                    print(f"{where}: {'skipped: ' + reason if reason else 'runs'}")
                    continue
                if reason:
                    skipped.append(f"{where}: {reason}")
                    continue
                why, seconds = run_block(block, work, a.timeout)
                ran += 1
                if why:
                    failures += 1
                    print(f"FAIL {where} ({seconds:.1f} s): {why}")
                else:
                    print(f"ok   {where} ({seconds:.1f} s)")
                sys.stdout.flush()
    finally:
        if not a.keep:
            shutil.rmtree(work, ignore_errors=True)
    if a.list:
        return 0
    for s in skipped:
        print(f"skip {s}")
    print(f"test_lessons: {ran} blocks run in {time.time() - total:.0f} s, {failures} failed, {len(skipped)} skipped")
    if ran == 0:
        return 77
    return 1 if failures else 0


def lesson_files(folder, answers):
    names = sorted(f for f in os.listdir(folder) if re.match(r"\d\d-.*\.md$", f))
    files = [os.path.join(folder, f) for f in names]
    sub = os.path.join(folder, answers)
    if os.path.isdir(sub):
        files += [os.path.join(sub, f) for f in sorted(os.listdir(sub)) if re.match(r"\d\d-.*\.md$", f)]
    return files


# ---- French and English --------------------------------------------------------------------

PROSE_NUMBER = re.compile(r"(?<![\w.])(\d{1,3}(?:(?:,|\u202f|\u00a0)\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?(?:e-?\d+)?)")


def strip_comment(line, lang):
    """A code line without its comment (# for shell and Python, // for C), for comparing code."""
    if lang in ("c", "cpp"):
        cut = line.find("//")
        return line if cut < 0 else line[:cut]
    if lang in ("sh", "bash", "shell", "python", "py"):
        quote = None
        for i, ch in enumerate(line):
            if quote:
                if ch == quote:
                    quote = None
            elif ch in "\"'":
                quote = ch
            elif ch == "#" and (i == 0 or line[i - 1] in " \t"):
                return line[:i]
    return line


def code_of(blocks):
    """Per block: its language and its lines without comments and trailing spaces, empty lines out."""
    out = []
    for b in blocks:
        lines = [strip_comment(l, b.lang).rstrip() for l in b.lines]
        out.append((b.lang, [l for l in lines if l.strip()]))
    return out


def prose_numbers(path):
    """The numbers outside code blocks, thousands separators (',' in English, narrow spaces in
    French) removed; Markdown links' targets and HTML comments left out."""
    text, inside = [], False
    with open(path, encoding="utf-8") as f:
        for line in f:
            if FENCE.match(line):
                inside = not inside
                continue
            if not inside and not DIRECTIVE.match(line):
                text.append(re.sub(r"\]\([^)]*\)", "]", line))
    found = PROSE_NUMBER.findall("".join(text))
    return sorted(re.sub(r"[,\u202f\u00a0]", "", n) for n in found)


def check_french(a):
    pairs = []
    fr = os.path.join(a.lessons, "fr")
    for en_path in lesson_files(a.lessons, "answers") + [os.path.join(a.lessons, "README.md")]:
        rel = os.path.relpath(en_path, a.lessons)
        rel = rel.replace("answers" + os.sep, "reponses" + os.sep)
        pairs.append((en_path, os.path.join(fr, rel)))
    failures = 0

    def fail(where, what):
        nonlocal failures
        failures += 1
        print(f"FAIL {where}: {what}")

    for en, frp in pairs:
        if not os.path.exists(frp):
            fail(frp, f"missing: every lesson has a French twin ({en})")
            continue
        eb, fb = code_of(read_blocks(en)), code_of(read_blocks(frp))
        if len(eb) != len(fb):
            fail(frp, f"{len(fb)} code blocks, {en} has {len(eb)}")
        for k, ((el, elines), (fl, flines)) in enumerate(zip(eb, fb)):
            if elines != flines:
                diff = next((i for i, (x, y) in enumerate(zip(elines, flines)) if x != y), min(len(elines), len(flines)))
                e = elines[diff] if diff < len(elines) else "(end)"
                f_ = flines[diff] if diff < len(flines) else "(end)"
                fail(frp, f"code block {k + 1} differs from {en}'s:\n    en: {e}\n    fr: {f_}")
                break
        en_n, fr_n = prose_numbers(en), prose_numbers(frp)
        if en_n != fr_n:
            from collections import Counter
            ce, cf = Counter(en_n), Counter(fr_n)
            only_en = sorted((ce - cf).elements(), key=float)
            only_fr = sorted((cf - ce).elements(), key=float)
            fail(frp, f"the numbers of the text differ from {en}'s: only in English {only_en[:20]}, "
                      f"only in French {only_fr[:20]}")
        else:
            print(f"ok   {frp}: {len(fb)} code blocks and {len(fr_n)} numbers as in {en}")
    print(f"test_lessons --french: {len(pairs)} pairs, {failures} failures")
    return 1 if failures else 0


def main():
    p = argparse.ArgumentParser(prog="test_lessons", description=__doc__.split("\n\n")[0])
    p.add_argument("--build", default="build")
    p.add_argument("--lessons", default="lessons")
    p.add_argument("--only", default=None)
    p.add_argument("--long", action="store_true")
    p.add_argument("--long-only", action="store_true")
    p.add_argument("--gpu", action="store_true")
    p.add_argument("--keep", default=None)
    p.add_argument("--list", action="store_true")
    p.add_argument("--timeout", type=int, default=900)
    p.add_argument("--french", action="store_true")
    a = p.parse_args()
    if a.french:
        return check_french(a)
    if a.long_only and os.environ.get("CGRAD_LESSONS_LONG") != "1" and not a.long:
        print("test_lessons --long-only: skipped (the lessons' runs of minutes; set CGRAD_LESSONS_LONG=1 to run them)")
        return 77
    return check_outputs(a)


if __name__ == "__main__":
    sys.exit(main())
