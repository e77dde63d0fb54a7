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
    "samlib_core": {"samlib_base", "samlib_data"},  # see KNOWN_DEBT: one data header only
    "samlib_onnx": {"samlib_core", "samlib_base"},
    "samlib_amg": {"samlib_core", "samlib_data", "samlib_mask", "samlib_base"},
    "samlib_eval": {"samlib_core", "samlib_data", "samlib_mask", "samlib_base", "samlib_amg"},
    "samlib_train": {"samlib_core", "samlib_data", "samlib_mask", "samlib_base", "samlib_eval"},
    "samlib_annotate": {"samlib_core", "samlib_data", "samlib_mask", "samlib_base"},
    "samlib_engine": {"samlib_core", "samlib_data", "samlib_mask", "samlib_base", "samlib_amg",
                      "samlib_eval", "samlib_train", "samlib_annotate"},
}

# Edges that exist and are not wanted (issue 20): the model should use the leaf (samlib_base) alone.
# Only these headers may cross them; a new one fails the check.
KNOWN_DEBT = {
    ("samlib_core", "samlib_data"): {"data/image.h"},
    # The trainer validates with the point-prompt evaluation (wanted) and draws its curves with
    # eval's plots (not wanted: plots belong in a reporting library the trainer does not need).
    ("samlib_train", "samlib_eval"): {"eval/points.h", "eval/plot.h"},
}


def library_of(path):
    """The library a source or header belongs to (paths relative to the root), or None."""
    parts = path.split("/")
    if parts[0] == "data":
        if len(parts) > 2 and parts[1] == "mask":
            return "samlib_mask"
        if parts[1].split(".")[0] in ("log", "config_file", "process", "progress", "parallel"):
            return "samlib_base"
        return "samlib_data"
    if parts[0] == "sam":
        return "samlib_onnx" if len(parts) > 2 and parts[1] == "onnx" else "samlib_core"
    if parts[0] == "engine":
        if len(parts) > 2 and parts[1] == "amg":
            return "samlib_amg"
        if len(parts) > 2 and parts[1] == "annotate":
            return "samlib_annotate"
        return "samlib_engine"
    if parts[0] == "eval":
        return "samlib_eval"
    if parts[0] == "train":
        return "samlib_train"
    return None


def self_test():
    """The check on a made-up tree: one clean file, a model header including the trainer, a new
    data header in the model, and a CMake link from the model to the engine: three findings."""
    import tempfile
    with tempfile.TemporaryDirectory() as root:
        files = {
            "data/mask/rle.h": "#pragma once\n",
            "data/dataset.h": '#include "data/mask/rle.h"\n',
            "sam/predictor.cpp": '#include "data/image.h"\n#include "data/log.h"\n#include "sam/predictor.h"\n',
            "sam/bad.h": '#include "train/trainer.h"\n',
            "sam/worse.cpp": '#include "data/dataset.h"\n',
            "sam/CMakeLists.txt": "sam_library(samlib_core x DEPS samlib_data samlib_engine)\n",
        }
        for rel, text in files.items():
            os.makedirs(os.path.join(root, os.path.dirname(rel)), exist_ok=True)
            with open(os.path.join(root, rel), "w", encoding="utf-8") as f:
                f.write(text)
        errors = check(root)
    want = ["sam/bad.h:1: samlib_core includes train/trainer.h",
            "sam/worse.cpp:1: samlib_core includes data/dataset.h",
            "sam/CMakeLists.txt:1: samlib_core links samlib_engine"]
    missing = [w for w in want if not any(e.startswith(w) for e in errors)]
    if missing or len(errors) != len(want):
        print("self-test failed: expected", want, "got", errors)
        return 1
    print("self-test: the three planted violations found, nothing else")
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
                        elif (lib, target) in KNOWN_DEBT and m.group(1) not in KNOWN_DEBT[(lib, target)]:
                            errors.append(f"{rel}:{n}: {lib} includes {m.group(1)}: of {target} it may "
                                          f"only use {sorted(KNOWN_DEBT[(lib, target)])} (issue 20)")
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
