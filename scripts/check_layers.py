#!/usr/bin/env python3
"""The libraries' layering, checked: every #include of a project header and every library named in
a CMake target_link_libraries / sam_library DEPS must point to the same library or one it is allowed
to use (the table below, drawn in docs/ARCHITECTURE.md). Exits 1 listing each offending file:line.

Usage: scripts/check_layers.py [ROOT]   (ROOT: the repository, default: this script's parent)
       scripts/check_layers.py --self-test   (the check finds violations planted in a made-up tree)
"""
import os
import re
import sys

# Library -> the libraries it may use (directly; not transitively). Order: leaves first.
ALLOWED = {
    "samlib_mask": set(),
    "samlib_base": set(),
    "samlib_data": {"samlib_mask", "samlib_base"},
    "samlib_core": {"samlib_base"},
    "samlib_onnx": {"samlib_core", "samlib_base"},
    "samlib_amg": {"samlib_core", "samlib_data", "samlib_mask", "samlib_base"},
    "samlib_eval": {"samlib_core", "samlib_data", "samlib_mask", "samlib_base", "samlib_amg"},
    "samlib_report": {"samlib_eval", "samlib_base"},
    "samlib_train": {"samlib_core", "samlib_data", "samlib_mask", "samlib_base", "samlib_eval"},
    "samlib_study": {"samlib_train", "samlib_core", "samlib_report", "samlib_base"},
    "samlib_annotate": {"samlib_core", "samlib_data", "samlib_mask", "samlib_base"},
    "samlib_engine": {"samlib_core", "samlib_data", "samlib_mask", "samlib_base", "samlib_amg",
                      "samlib_eval", "samlib_report", "samlib_train", "samlib_annotate"},
}

# Edges allowed through the headers named only; a new one fails the check.
NARROW_EDGES = {
    # The trainer validates with the point-prompt evaluation; nothing else of eval.
    ("samlib_train", "samlib_eval"): {"eval/points.h"},
}


# The modules of data/ that form the leaf library samlib_base (no libtorch, no OpenCV).
BASE_MODULES = ("log", "config_file", "config_schema", "process", "progress", "parallel", "resample",
                "atomic_file")


def library_of(path):
    """The library a source or header belongs to (paths relative to the root), or None."""
    parts = path.split("/")
    if parts[0] == "data":
        if len(parts) > 2 and parts[1] == "mask":
            return "samlib_mask"
        if parts[1].split(".")[0] in BASE_MODULES:
            return "samlib_base"
        return "samlib_data"
    if parts[0] == "sam":
        if len(parts) > 2 and parts[1] == "amg":
            return "samlib_amg"
        return "samlib_onnx" if len(parts) > 2 and parts[1] == "onnx" else "samlib_core"
    if parts[0] == "engine":
        if len(parts) > 2 and parts[1] == "annotate":
            return "samlib_annotate"
        return "samlib_engine"
    if parts[0] == "eval":
        return "samlib_report" if len(parts) > 2 and parts[1] == "report" else "samlib_eval"
    if parts[0] == "train":
        return "samlib_study" if len(parts) > 2 and parts[1] == "study" else "samlib_train"
    return None


def self_test():
    """The check on a made-up tree: clean files, a model header including the trainer, a data
    header in the model, a second eval header in the trainer, and CMake links from the model to
    data and to the engine: five findings."""
    import tempfile
    with tempfile.TemporaryDirectory() as root:
        files = {
            "data/mask/rle.h": "#pragma once\n",
            "data/dataset.h": '#include "data/mask/rle.h"\n',
            "sam/predictor.cpp": '#include "data/resample.h"\n#include "data/log.h"\n#include "sam/predictor.h"\n',
            "sam/bad.h": '#include "train/trainer.h"\n',
            "sam/worse.cpp": '#include "data/image.h"\n',
            "train/trainer.cpp": '#include "eval/points.h"\n#include "eval/edges.h"\n',
            "sam/CMakeLists.txt": "sam_library(samlib_core x DEPS samlib_base samlib_data samlib_engine)\n",
        }
        for rel, text in files.items():
            os.makedirs(os.path.join(root, os.path.dirname(rel)), exist_ok=True)
            with open(os.path.join(root, rel), "w", encoding="utf-8") as f:
                f.write(text)
        errors = check(root)
    want = ["sam/bad.h:1: samlib_core includes train/trainer.h",
            "sam/worse.cpp:1: samlib_core includes data/image.h",
            "train/trainer.cpp:2: samlib_train includes eval/edges.h",
            "sam/CMakeLists.txt:1: samlib_core links samlib_data",
            "sam/CMakeLists.txt:1: samlib_core links samlib_engine"]
    missing = [w for w in want if not any(e.startswith(w) for e in errors)]
    if missing or len(errors) != len(want):
        print("self-test failed: expected", want, "got", errors)
        return 1
    print(f"self-test: the {len(want)} planted violations found, nothing else")
    return 0


def main():
    if sys.argv[1:] == ["--self-test"]:
        return self_test()
    root = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else
                           os.path.join(os.path.dirname(__file__), ".."))
    errors = check(root)
    for e in errors:
        print(e)
    if errors:
        print(f"{len(errors)} layering violation(s); the allowed uses are in scripts/check_layers.py "
              "and docs/ARCHITECTURE.md")
        return 1
    print(f"layering: {len(ALLOWED)} libraries, every include and link points downward")
    return 0


def check(root):
    errors = []
    include = re.compile(r'^\s*#\s*include\s+"([^"]+)"')
    for top in ("data", "sam", "engine", "eval", "train"):
        for dirpath, _, files in os.walk(os.path.join(root, top)):
            for name in sorted(files):
                if not name.endswith((".h", ".cpp")):
                    continue
                rel = os.path.relpath(os.path.join(dirpath, name), root)
                lib = library_of(rel)
                with open(os.path.join(root, rel), encoding="utf-8") as f:
                    for n, line in enumerate(f, 1):
                        m = include.match(line)
                        if not m:
                            continue
                        target = library_of(m.group(1))
                        if target is None or target == lib:
                            continue
                        if target not in ALLOWED[lib]:
                            errors.append(f"{rel}:{n}: {lib} includes {m.group(1)} ({target}), "
                                          f"which it may not use")
                        elif (lib, target) in NARROW_EDGES and m.group(1) not in NARROW_EDGES[(lib, target)]:
                            errors.append(f"{rel}:{n}: {lib} includes {m.group(1)}: of {target} it may "
                                          f"only use {sorted(NARROW_EDGES[(lib, target)])}")
    # Links declared in CMake: sam_library(NAME ... DEPS a b) and target_link_libraries(NAME ...).
    link = re.compile(r"(sam_library|target_link_libraries)\(\s*(samlib_\w+)([^)]*)\)", re.S)
    for dirpath, _, files in os.walk(root):
        if os.path.relpath(dirpath, root).split(os.sep)[0] in ("build", "build-cuda", ".git", "runs"):
            continue
        if "CMakeLists.txt" not in files:
            continue
        rel = os.path.relpath(os.path.join(dirpath, "CMakeLists.txt"), root)
        text = open(os.path.join(dirpath, "CMakeLists.txt"), encoding="utf-8").read()
        for m in link.finditer(text):
            lib, args = m.group(2), m.group(3)
            if lib not in ALLOWED:
                continue
            line = text.count("\n", 0, m.start()) + 1
            for dep in re.findall(r"\bsamlib_\w+", args):
                if dep != lib and dep not in ALLOWED[lib]:
                    errors.append(f"{rel}:{line}: {lib} links {dep}, which it may not use")
    return errors


if __name__ == "__main__":
    sys.exit(main())
