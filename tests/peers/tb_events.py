"""Reads a folder's TensorBoard event files with the tensorboard package's own reader (PyPI) and
prints every scalar as JSON: {"tag": [[step, value], ...], ...}, plus "_file_version" with the
version record of the first file. Used by tests/train/test_tensorboard.cpp and
tests/tools/test_sam_train.cpp to check our writer (train/tensorboard.h)."""
import glob
import json
import os
import sys

from tensorboard.backend.event_processing import event_accumulator, event_file_loader


def main(folder):
    files = sorted(glob.glob(os.path.join(folder, "events.out.tfevents.*")))
    if not files:
        sys.exit(f"no events.out.tfevents.* in {folder}")
    # The raw reader checks each record's CRCs; its first event names the format.
    first = next(iter(event_file_loader.RawEventFileLoader(files[0]).Load()))
    from tensorboard.compat.proto import event_pb2
    ev = event_pb2.Event.FromString(first)
    acc = event_accumulator.EventAccumulator(folder, size_guidance={event_accumulator.SCALARS: 0})
    acc.Reload()
    out = {"_file_version": ev.file_version}
    for tag in acc.Tags()["scalars"]:
        out[tag] = [[s.step, s.value] for s in acc.Scalars(tag)]
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1])
