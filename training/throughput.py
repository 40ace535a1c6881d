"""CPU inference speed of exported FCDN files with Python's onnxruntime (where Node is
not at hand, e.g. a quiet many-core machine; same library as onnxruntime-node).

  python3 training/throughput.py [--threads 2] [--batches 32,3,1] [--seconds 3] a.onnx b.onnx ...

Prints one JSON line per model and batch: slices per second, ms per batch (wall), and
CPU ms per slice (process time, less sensitive to other load on the machine)."""
from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
import onnxruntime as ort


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="+")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batches", default="32,3,1")
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--rounds", type=int, default=2, help="models are timed in turn, this many times")
    args = ap.parse_args(argv)
    so = ort.SessionOptions()
    so.intra_op_num_threads = args.threads
    so.inter_op_num_threads = 1
    sessions = {m: ort.InferenceSession(m, so, providers=["CPUExecutionProvider"]) for m in args.models}
    for r in range(args.rounds):
        for b in (int(x) for x in args.batches.split(",")):
            x = (np.arange(b * 64 * 64, dtype=np.int64) * 2654435761 % 1000 / 1000).astype(np.float32)
            x = x.reshape(b, 1, 64, 64)
            for m, s in sessions.items():
                s.run(None, {"patches": x})
                runs, t0, c0 = 0, time.perf_counter(), time.process_time()
                while time.perf_counter() - t0 < args.seconds:
                    s.run(None, {"patches": x})
                    runs += 1
                wall, cpu = time.perf_counter() - t0, time.process_time() - c0
                print(json.dumps({"model": os.path.basename(m), "round": r, "batch": b,
                                  "threads": args.threads, "slicesPerSecond": round(runs * b / wall, 1),
                                  "msPerBatch": round(1000 * wall / runs, 2),
                                  "cpuMsPerSlice": round(1000 * cpu / runs / b, 3)}), flush=True)


if __name__ == "__main__":
    main()
