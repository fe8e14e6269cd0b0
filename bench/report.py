"""Turn a bench run into bench/results/NAME.json, NAME.png and bench/RESULTS.md."""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def write(results: dict, name: str) -> None:
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(results, indent=1, default=float))
    plot(results, out / f"{name}.png")
    (HERE / "RESULTS.md").write_text(markdown(results, name))
    print(f"wrote {out / (name + '.json')}, {out / (name + '.png')} and {HERE / 'RESULTS.md'}")


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for key, colour in (("fast", "tab:green"), ("slow", "tab:red")):
        vals = sorted(r["sent_ms"] for r in results[key]["rows"])
        if vals:
            axes[0].plot(vals, [i / len(vals) for i in range(1, len(vals) + 1)], color=colour,
                         label=f"{'fast path' if key == 'fast' else 'WS_FAST_PATH=false'} (n={len(vals)})")
    axes[0].set_xscale("log")
    axes[0].set_xlabel("price update -> liquidation sent (ms)")
    axes[0].set_ylabel("share of liquidations")
    axes[0].set_title("chain event to send, CDF")
    axes[0].legend()
    stages = ["detected_ms", "enqueued_ms", "started_ms", "sent_ms", "mined_ms"]
    rows = results["fast"]["rows"]
    for i, stage in enumerate(stages):
        vals = [r[stage] for r in rows if r[stage] is not None]
        axes[1].boxplot(vals, positions=[i], widths=0.6)
    axes[1].set_xticks(range(len(stages)), [s.removesuffix("_ms") for s in stages])
    axes[1].set_ylabel("ms after the price update")
    axes[1].set_title("fast path, stage by stage")
    iso = results["isolation"]["raw"]
    axes[2].hist([iso["quiet"], iso["busy"]], bins=30, label=["idle default queue", "with backlog"])
    axes[2].set_xlabel("priority enqueue -> start (ms)")
    axes[2].set_title("lane isolation")
    axes[2].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def _row(label: str, s: dict | None, unit: str = "ms") -> str:
    if not s:
        return f"| {label} | - | | | | | {unit} |"
    return f"| {label} | {s['n']} | {s['p50']:.1f} | {s['p90']:.1f} | {s['p99']:.1f} | {s['max']:.1f} | {unit} |"


def _flash_rows(fl: dict | None) -> list[str]:
    """The same crash with no tokens at all: every liquidation by flash loan through our contract."""
    if not fl:
        return []
    return [_row("flash loans: detection -> send", fl["detect_to_send_ms"]),
            _row("flash loans: price update -> tx sent", fl["event_to_send_ms"]),
            _row("flash loans: price update -> liquidation mined", fl["event_to_mined_ms"]),
            _row(f"flash loans: gas per liquidation ({', '.join(f'{k} {v}' for k, v in fl.get('routes', {}).items())})",
                 fl.get("gas"), "gas")]


def markdown(r: dict, name: str) -> str:
    a = r["args"]
    m = r["machine"]
    f, s, iso = r["fast"], r["slow"], r["isolation"]
    cmd = (f"make bench BENCH_ARGS=\"--borrowers {a['borrowers']} --backlog {a['backlog']} --asset {a['asset']} "
           f"--pct {a['pct']} --steps {a.get('steps', 1)} --priority-workers {a.get('priority_workers', 1)} --name {name}\"")
    lines = [
        "# Benchmark results",
        "",
        f"Reproduce: `{cmd}` (the defaults are `make bench`). Raw data: `bench/results/{name}.json`; plot: "
        f"`bench/results/{name}.png`.",
        "",
        f"Machine: {m['cpus']} cores ({m['cpu']}), {m['mem_gib']} GiB, Python {m['python']}, {m['platform']}. "
        "Everything (anvil, Redis, SQLite, both workers, beat, the producer and this script) shares those cores.",
        "",
        f"Scenario: {a['borrowers']:,} seeded borrowers, {a['backlog']:,} `update_position` tasks waiting on the default "
        f"queue (bookkeeping of the users the move leaves healthy), {a['asset']} moved {a['pct']:+}% in "
        f"{a.get('steps', 1)} oracle update(s) {a.get('step_secs', 0):g} s apart: {f['liquidatable']} borrowers "
        f"liquidatable. {a.get('priority_workers', 1)} priority worker(s) (`-c 1 --prefetch-multiplier=1`, at `nice -5`), "
        "one default worker (at `nice 10`), beat, the producer.",
        "",
        "| measure | n | p50 | p90 | p99 | max | unit |",
        "|---|---|---|---|---|---|---|",
        _row("fast path: detection -> send", f["detect_to_send_ms"]),
        _row("fast path: price update -> producer detects", f["event_to_detect_ms"]),
        _row("fast path: event received -> routed (the producer's own time)", f.get("detect_to_route_ms")),
        _row("fast path: priority enqueue -> task start", f["enqueue_to_start_ms"]),
        _row("fast path: task start -> tx sent (the worker's own time)", f.get("start_to_send_ms")),
        _row("fast path: price update -> tx sent", f["event_to_send_ms"]),
        _row("fast path: price update -> liquidation mined", f["event_to_mined_ms"]),
        _row("fast path: blocks between price update and liquidation", f["blocks_after_price"], "blocks"),
        _row("fast path: gas per liquidation (inventory)", f.get("gas"), "gas"),
        *_flash_rows(r.get("flash")),
        _row("WS_FAST_PATH=false: price update -> tx sent", s["event_to_send_ms"]),
        _row("WS_FAST_PATH=false: detection (by update_position / scan) -> send", s["detect_to_send_ms"]),
        _row("WS_FAST_PATH=false: price update -> liquidation mined", s["event_to_mined_ms"]),
        _row("WS_FAST_PATH=false: blocks between price update and liquidation", s["blocks_after_price"], "blocks"),
        _row("priority enqueue -> start, idle default queue", iso["without_backlog_ms"]),
        _row(f"priority enqueue -> start, {a['backlog']:,} waiting on default", iso["with_backlog_ms"]),
        "",
        f"- Fast path vs `WS_FAST_PATH=false`, from the chain event to the transaction sent (p50): "
        f"**{r['fast_vs_slow_event_to_send_p50']:.1f}x** faster (target >= 10x). Measured from each path's own detection "
        f"the ratio is {r['fast_vs_slow_p50']:.2f}x: without the fast path, \"detection\" happens only when a bookkeeping "
        "task or a scan reaches the user, which is exactly the wait the fast path removes.",
        f"- Isolation ratio (priority p99 with backlog / without): **{iso['isolation_ratio_p99']:.2f}** (target <= 1.25); "
        f"{iso['default_waiting_after']:,} bookkeeping tasks were still waiting after the probe.",
    ]
    for n, sc in r["scanner"].items():
        lines.append(f"- Scanner at {int(n):,} known users: {sc['scanner_users_per_s']:,.0f} users/s vs a raw JSON-RPC batch "
                     f"of the same calls {sc['raw_users_per_s']:,.0f}/s: **{sc['ratio']:.0%}** (target >= 80%; medians of "
                     f"{sc.get('rounds', 1)} alternating passes).")
    if mi := r.get("mirror"):
        mm = mi["memory_mb"]
        lines.append(f"- Mirror screen ({mi['users']:,} users over {mi['reserves']} reserves, {mi['moves']} price moves of one "
                     f"asset each): apply the block, screen, confirm exactly p50 **{mi['move_ms']['p50']:.2f} ms**, p99 "
                     f"**{mi['move_ms']['p99']:.2f} ms** (target <= 10 ms; the vectorised pass alone p50 "
                     f"{mi['pass_ms']['p50']:.2f} ms); memory {mm['total']:.0f} MB (users {mm['users']:.0f}, screen "
                     f"{mm['screen']:.0f}; target <= 300 MB).")
    mem = {**{f"fast/{k}": v for k, v in f.get("peak_memory_mb", {}).items()},
           **{f"slow/{k}": v for k, v in s.get("peak_memory_mb", {}).items()}}
    lines.append("- Peak memory (VmHWM, a worker includes its pool children): "
                 + ", ".join(f"{k} {v:.0f} MB" for k, v in mem.items()) + ".")
    if races := r.get("race"):
        from bench.race import markdown as race_markdown

        lines += ["", "### Race against a compact rival (bench/rival.py)", "",
                  *race_markdown(races, "make bench (phase race; alone: python -m bench.race)")[2:]]
    lines += ["", "Targets: price update -> tx sent p50 <= 15 ms and p99 <= 40 ms, routed within 3 ms of the event "
              "(issue 13); detection -> send p50 <= 25 ms and p99 <= 100 ms with the backlog; isolation <= 1.25; fast "
              "path >= 10x; scanner >= 80% of raw; the mirror's screen of 100,000 users <= 10 ms in <= 300 MB. See the "
              "notes below for what bounds each figure.", ""]
    notes = HERE / "NOTES.md"
    if notes.exists():
        lines += [notes.read_text()]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    write(json.loads(Path(sys.argv[1]).read_text()), Path(sys.argv[1]).stem)
