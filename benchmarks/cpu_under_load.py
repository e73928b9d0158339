"""The default student's training step on a CPU that other work shares: OpenMP's spinning wait
(torch's default) vs the sleeping wait fdd's entry points choose (``OMP_WAIT_POLICY=PASSIVE``,
fdd/runtime/cpu.py), and vs one torch thread (what a user who knows the symptom would try).

Each cell is a fresh process (OpenMP reads the policy once, at import), training the default
student's shape (fdd/conf/student/tiny-word.yaml: a 3-layer Llama, hidden 128) on batches of the
default batch size. "busy" runs ``--busy`` spinning processes beside it (default: one per core),
the situation of a loaded laptop or a shared CI box. Rows are measured in turns, idle and busy
alternating, so a drift of the machine hits every row alike.

    python benchmarks/cpu_under_load.py             # ~2 min on 2 cores
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

STEP = r"""
import sys, time, torch, yaml
from transformers import AutoConfig, AutoModelForCausalLM
conf = yaml.safe_load(open(sys.argv[1]))
threads, steps = int(sys.argv[2]), int(sys.argv[3])
if threads:
    torch.set_num_threads(threads)
torch.manual_seed(0)
mc = dict(conf["model_config"]); kind = mc.pop("model_type")
model = AutoModelForCausalLM.from_config(AutoConfig.for_model(kind, vocab_size=170, **mc))
opt = torch.optim.AdamW(model.parameters(), float(conf["lr"]))
x = torch.randint(0, 170, (int(conf["batch_size"]), 110))  # about a default item: question + program
def step():
    model(input_ids=x, labels=x).loss.backward(); opt.step(); opt.zero_grad()
for _ in range(3):
    step()
t = time.perf_counter()
for _ in range(steps):
    step()
print((time.perf_counter() - t) / steps * 1000)
"""

ROWS = [  # label, OMP_WAIT_POLICY (None: unset, OpenMP's default), torch threads (0: torch's default)
    ("torch default (spinning wait)", None, 0),
    ("fdd: OMP_WAIT_POLICY=PASSIVE", "PASSIVE", 0),
    ("one torch thread", None, 1),
]


def _spin() -> None:
    while True:
        pass


def measure(policy, threads: int, steps: int) -> float:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS")}
    if policy:
        env["OMP_WAIT_POLICY"] = policy
    conf = ROOT / "fdd" / "conf" / "student" / "tiny-word.yaml"
    out = subprocess.run(
        [sys.executable, "-c", STEP, str(conf), str(threads), str(steps)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return float(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--busy", type=int, default=os.cpu_count() or 2, help="spinning processes beside it")
    args = ap.parse_args(argv)
    times = {(label, load): [] for label, _, _ in ROWS for load in ("idle", "busy")}
    for _ in range(args.repeats):
        for load in ("idle", "busy"):
            spinners = [mp.Process(target=_spin, daemon=True) for _ in range(args.busy if load == "busy" else 0)]
            for p in spinners:
                p.start()
            try:
                for label, policy, threads in ROWS:
                    times[label, load].append(measure(policy, threads, args.steps))
            finally:
                for p in spinners:
                    p.terminate()
                    p.join()
    med = {k: statistics.median(v) for k, v in times.items()}
    base = ROWS[0][0]
    print(
        f"default student, one training step (ms, median of {args.repeats}); {os.cpu_count()} cores, busy = {args.busy} spinning processes"
    )
    print(
        f"| {'setting':31s} | {'idle ms':>8s} | {'busy ms':>8s} | {'idle vs default':>15s} | {'busy vs default':>15s} |"
    )
    print(f"|{'-' * 33}|{'-' * 9}:|{'-' * 9}:|{'-' * 16}:|{'-' * 16}:|")
    for label, _, _ in ROWS:
        print(
            f"| {label:31s} | {med[label, 'idle']:8.0f} | {med[label, 'busy']:8.0f} | "
            f"{med[base, 'idle'] / med[label, 'idle']:14.2f}x | {med[base, 'busy'] / med[label, 'busy']:14.2f}x |"
        )
    print("(x: speed relative to torch's default; above 1 is faster)")


if __name__ == "__main__":
    main()
