"""Tables, target verdicts and the RESULTS.md section of the calibration benchmark."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable

from results_file import measured_with, replace_section, text_lines

if TYPE_CHECKING:
    from calibration import Bench

SECTION_TITLE = "Calibration: q8studio vs onnxruntime quantize_static"
MACHINE_TITLE = "Machine"
HISTOGRAM_METHODS = ("percentile", "entropy")
RSS_GROWTH_TARGET = 1.2
RSS_RATIO_TARGET = 1 / 5
TIME_RATIO_TARGET = 1 / 3
TIME_TARGET_SAMPLES = 200
FLOOR_RATIO_TARGET = 2.0


@dataclass
class Run:
    """One worker process: how it ended, its peak RSS, its timings and the scores of its int8 model."""

    status: str
    peak_rss_mb: float
    seconds: float | None = None
    phases: dict[str, float] = field(default_factory=dict)
    batch: int = 0
    score: float | None = None
    changed: int | None = None  # evaluation samples whose int8 top-1 differs from the float model's
    output_sqnr_db: float | None = None  # of its first output against the float model's, on the evaluation data
    latency_ms: tuple[float, float] | None = None  # (float model, int8 model)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def killed(self) -> bool:
        """Stopped by the watchdog: its peak RSS is then a lower bound of what it needed."""
        return self.status.startswith("killed")

    @property
    def calibration_pass(self) -> float | None:
        """q8studio's own calibration pass (statistics over the samples), without pre-processing or writing."""
        return self.phases.get("calibrate_s")


@dataclass
class Row:
    """One method x sample count: q8studio, onnxruntime and the float floor."""

    method: str
    samples: int
    q8: Run
    ort: Run
    floor: Run

    @property
    def time_ratio(self) -> float | None:
        return _ratio(self.q8.seconds, self.ort.seconds) if self.q8.ok and self.ort.ok else None

    @property
    def rss_ratio(self) -> float | None:
        """q8studio / onnxruntime peak RSS; an upper bound when the watchdog killed onnxruntime's run."""
        measured = self.q8.ok and (self.ort.ok or self.ort.killed)
        return _ratio(self.q8.peak_rss_mb, self.ort.peak_rss_mb) if measured else None

    @property
    def floor_rss_ratio(self) -> float | None:
        """The float floor's peak RSS / onnxruntime's: the least any tool running the model in ONNX Runtime can reach."""
        return _ratio(self.floor.peak_rss_mb, self.ort.peak_rss_mb) if self.floor.ok and self.ort.ok else None

    @property
    def floor_ratio(self) -> float | None:
        return _ratio(self.q8.seconds, self.floor.seconds) if self.q8.ok and self.floor.ok else None

    @property
    def pass_floor_ratio(self) -> float | None:
        return _ratio(self.q8.calibration_pass, self.floor.seconds) if self.q8.ok and self.floor.ok else None


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


# --- formatting --------------------------------------------------------------------------------


def _num(value: float | None, digits: int = 2, prefix: str = "") -> str:
    return "n/a" if value is None else f"{prefix}{value:.{digits}f}"


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.2f}%"


def _secs(value: float | None) -> str:
    """Seconds with three decimals below 1 s (float floors of tiny models), two above."""
    return _num(value, 3 if value is not None and value < 1.0 else 2)


def _seconds(run: Run) -> str:
    return _secs(run.seconds) if run.ok else run.status


def _mb(run: Run) -> str:
    if run.ok:
        return f"{run.peak_rss_mb:.0f}"
    return f"≥ {run.peak_rss_mb:.0f} (killed)" if run.killed else f"{run.peak_rss_mb:.0f} (failed)"


def _rss_ratio(row: Row) -> str:
    return _num(row.rss_ratio, 3, "≤ " if row.ort.killed else "")


def progress_line(model: str, row: Row) -> str:
    """One line per finished row, printed while the benchmark runs (scores come at the end)."""
    return (
        f"{model:10} {row.method:10} N={row.samples:<4} q8studio {_run_text(row.q8)} | ort {_run_text(row.ort)} "
        f"| floor {_run_text(row.floor)}"
    )


def _run_text(run: Run) -> str:
    return f"{_secs(run.seconds)} s, {_mb(run)} MB" if run.ok else f"{run.status}, {_mb(run)} MB"


def _table(headers: list[str], lines: Iterable[list[str]]) -> list[str]:
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    out += ["| " + " | ".join(cells) + " |" for cells in lines]
    return out


def main_table(rows: list[Row], labelled: bool) -> list[str]:
    score = "int8 top-1" if labelled else "int8 top-1 agreement"
    headers = [
        "method", "N", "q8studio s (calib pass)", "ORT s", "time q8/ORT", "q8studio peak MB", "ORT peak MB",
        "RSS q8/ORT", f"q8studio {score}", f"ORT {score}", "float floor s", "floor peak MB",
        "q8studio/floor (pass/floor)",
    ]
    return _table(headers, (
        [
            row.method, str(row.samples), f"{_seconds(row.q8)} ({_secs(row.q8.calibration_pass)})", _seconds(row.ort),
            _num(row.time_ratio, 3), _mb(row.q8), _mb(row.ort), _rss_ratio(row), _pct(row.q8.score),
            _pct(row.ort.score), _seconds(row.floor), _mb(row.floor),
            f"{_num(row.floor_ratio, 1)} ({_num(row.pass_floor_ratio, 1)})",
        ]
        for row in rows
    ))


def exported_table(rows: list[Row]) -> list[str]:
    """Each exported int8 model against the float model: output SQNR, then latencies."""
    def cells(run: Run) -> list[str]:
        if run.latency_ms is None:
            return ["n/a"] * 4
        float_ms, int8_ms = run.latency_ms
        return [_num(run.output_sqnr_db, 2), f"{float_ms:.3f}", f"{int8_ms:.3f}", f"{int8_ms / float_ms:.2f}"]

    headers = ["method", "N", "q8studio output SQNR dB", "float ms", "q8studio int8 ms", "q8studio int8/float",
               "ORT output SQNR dB", "float ms", "ORT int8 ms", "ORT int8/float"]
    return _table(headers, ([row.method, str(row.samples), *cells(row.q8), *cells(row.ort)] for row in rows))


PHASES = [("preprocess_s", "pre-process"), ("plan_s", "plan"), ("calibrate_s", "calibration pass"),
          ("ranges_s", "ranges"), ("quantize_s", "write + verify")]
"""q8studio's timed phases (``QuantizeResult.timings``) in the order they run, with their column names."""


def phase_table(rows: list[Row]) -> list[str]:
    """Where q8studio's end-to-end time goes at the floor target's sample count, next to the floor: the
    phases outside the calibration pass are fixed costs, which the floor of a small model cannot absorb."""
    at = [row for row in rows if row.samples == TIME_TARGET_SAMPLES and row.q8.ok]

    def ms(value: float | None) -> str:
        return _num(None if value is None else 1e3 * value, 1)

    def cells(row: Row) -> list[str]:
        phases = [row.q8.phases.get(key) for key, _ in PHASES]
        known = [value for value in phases if value is not None]
        total, calibration = row.q8.seconds, row.q8.calibration_pass
        rest = total - sum(known) if total is not None and known else None
        fixed = total - calibration if total is not None and calibration is not None else None
        return [row.method, *map(ms, phases), ms(rest), ms(fixed), ms(total),
                ms(row.floor.seconds if row.floor.ok else None)]

    headers = ["method", *(f"{name} ms" for _, name in PHASES), "load ms", "all but the pass ms", "total ms",
               "float floor ms"]
    return _table(headers, map(cells, at))


# --- targets -----------------------------------------------------------------------------------

Figures = list[tuple[str, float | None]]


def target_lines(rows: list[Row]) -> list[str]:
    """One line per target: MET / NOT MET with the figures behind it."""
    by_key = {(row.method, row.samples): row for row in rows}
    samples = sorted({row.samples for row in rows})
    methods = list(dict.fromkeys(row.method for row in rows))
    histogram = [m for m in methods if m in HISTOGRAM_METHODS]
    at = [(m, by_key[m, TIME_TARGET_SAMPLES]) for m in methods if (m, TIME_TARGET_SAMPLES) in by_key]
    low, high = samples[0], samples[-1]
    growth = [(m, _rss_growth(by_key[m, low], by_key[m, high])) for m in methods] if high != low else []
    rss = [(f"{m} N={n}", by_key[m, n].rss_ratio) for m in histogram for n in samples]
    floor_rss = [(f"{m} N={n}", by_key[m, n].floor_rss_ratio) for m in histogram for n in samples]
    timed = [(m, row.time_ratio) for m, row in at if m in histogram]
    floor = [(m, row.floor_ratio) for m, row in at]
    floor_pass = [(m, row.pass_floor_ratio) for m, row in at]
    advantage = [(f"{row.method} N={row.samples}", _accuracy_advantage(row)) for row in rows]
    return [
        f"- q8studio peak RSS at {high} samples ≤ {RSS_GROWTH_TARGET}x that at {low}: "
        f"{_verdict(growth, RSS_GROWTH_TARGET)} ({_figures(growth, _times)})",
        "- q8studio peak RSS ≤ 1/5 of quantize_static's (percentile, entropy): "
        f"{_verdict(rss, RSS_RATIO_TARGET)} (q8/ORT: {_figures(rss, _fraction)}){_floor_rss_note(floor_rss)}",
        f"- q8studio time ≤ 1/3 of quantize_static's at {TIME_TARGET_SAMPLES} samples (percentile, entropy): "
        f"{_verdict(timed, TIME_RATIO_TARGET)} (q8/ORT: {_figures(timed, _fraction)})",
        f"- q8studio time within {FLOOR_RATIO_TARGET:.0f}x of float inference at {TIME_TARGET_SAMPLES} samples, "
        f"end to end: {_verdict(floor, FLOOR_RATIO_TARGET)} ({_figures(floor, _times)}); calibration pass alone: "
        f"{_verdict(floor_pass, FLOOR_RATIO_TARGET)} ({_figures(floor_pass, _times)})",
        "- q8studio int8 accuracy no worse than quantize_static's (same method and granularity): "
        f"{_verdict([(k, _neg(v)) for k, v in advantage], 0.0)} (q8studio − ORT: {_figures(advantage, _points)})"
        f"{_changed_note(rows)}",
    ]


def _floor_rss_note(floor_rss: Figures) -> str:
    """Where a process that only runs the float model already peaks above the target share of
    quantize_static's memory (a small model, whose activations are a few MB), say so with its figures."""
    above = [(label, value) for label, value in floor_rss if value is not None and value > RSS_RATIO_TARGET]
    if not above:
        return ""
    return (f"; out of reach on these rows for any tool that runs the model in ONNX Runtime: the float floor's "
            f"own peak is already above it (floor/ORT: {_figures(above, _fraction)})")


def _changed_note(rows: list[Row]) -> str:
    """How many evaluation samples each int8 model predicts differently from the float model, on the rows
    where q8studio scores lower: whether a gap is a systematic loss or one or two flipped samples."""
    behind = [row for row in rows if (_accuracy_advantage(row) or 0.0) < 0]
    counts = ", ".join(f"{row.method} N={row.samples} {row.q8.changed} vs {row.ort.changed} "
                       f"({_num(row.q8.output_sqnr_db, 2)} vs {_num(row.ort.output_sqnr_db, 2)} dB)" for row in behind)
    return f"; top-1 changed from float's (output SQNR), q8studio vs ORT: {counts}" if behind else ""


def _rss_growth(low: Row, high: Row) -> float | None:
    return _ratio(high.q8.peak_rss_mb, low.q8.peak_rss_mb) if low.q8.ok and high.q8.ok else None


def _accuracy_advantage(row: Row) -> float | None:
    """q8studio's int8 score minus onnxruntime's (negative: q8studio is worse)."""
    if row.q8.score is None or row.ort.score is None:
        return None
    return row.q8.score - row.ort.score


def _verdict(figures: Figures, limit: float) -> str:
    """MET when every comparable figure is within ``limit``; rows without a figure (onnxruntime
    killed, or a failed run, which the tables show) are counted, not judged."""
    known = [value for _, value in figures if value is not None]
    if not known:
        return "**NOT MEASURED**"
    verdict = "**MET**" if max(known) <= limit else "**NOT MET**"
    missing = len(figures) - len(known)
    return f"{verdict} on the {len(known)} comparable rows ({missing} not comparable)" if missing else verdict


def _figures(figures: Figures, fmt: Callable[[float | None], str]) -> str:
    return ", ".join(f"{label} {fmt(value)}" for label, value in figures) or "no rows"


def _neg(value: float | None) -> float | None:
    return None if value is None else -value


def _fraction(value: float | None) -> str:
    return _num(value, 3)


def _times(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}x"


def _points(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:+.2f} pts"


# --- RESULTS.md --------------------------------------------------------------------------------


def results_section(models: list[tuple[Bench, list[Row], dict]], info: dict[str, str]) -> str:
    """The whole markdown section, from ``## title`` to its last line."""
    lines = [
        f"## {SECTION_TITLE}",
        "",
        f"Measured {info['date']} with {measured_with()} on a **shared 2-core machine** (see Machine) while other test runs were "
        f"going on, so times and latencies are noisy: {_repeats(int(info['repeat']))}, each latency a single "
        f"measurement (1-minute load average {info['load']} at start / end). "
        f"Command: `{info['command']}` ({info['elapsed']}); "
        f"sha256 of q8studio/core/clipping.py `{info['clipping']}`, of the {info['modules']} q8studio modules the "
        f"benchmark runs `{info['code']}`{info['changed']}.",
        "",
        "- **Same work on both sides**: same float model file, the first N samples of the same .npz in the same "
        "batches, QDQ format, uint8 activations (asymmetric), int8 weights (symmetric), "
        f"{info['granularity']} weights, methods minmax / percentile / entropy.",
        "- **q8studio**: a fresh process calls `quantize_model` from q8studio's core (what `q8studio quantize` "
        "runs, minus its per-layer error report): load the model, pre-process (onnxruntime's `quant_pre_process`), "
        "a dry run of the quantizer that finds which ranges it reads, one streaming calibration pass, clipping "
        "ranges, QDQ writing and a verification run. \"calib pass\" is the streaming calibration pass alone "
        "(session creation, inference and statistics: what the float floor does, plus the statistics), with "
        "q8studio's default histogram sample (at most 8,192 values of each sample of each activation are binned; "
        "the max sees every value; the large non-negative activations are summarised inside the model, "
        "q8studio/core/summaries.py).",
        "- **ORT**: a fresh process runs `quant_pre_process`, then `quantize_static` (`CalibrationMethod.MinMax / "
        "Percentile / Entropy`, default extra options) with a `CalibrationDataReader` streaming the same samples "
        "from the .npz; both steps are in the time. Defaults matter: Percentile is symmetric on |x| with 2048 bins; "
        "Entropy uses 128 bins and 128 quantized bins. Its Percentile and Entropy calibrators fail (ValueError in "
        "`np.asarray` over the list of batches) when the last batch is shorter than the others, so onnxruntime gets "
        "the largest batch size up to q8studio's that divides N.",
        f"- **Percentile**: both use {info['percentile']} (onnxruntime's default; q8studio run with "
        f"`--percentile {info['percentile']}` instead of its own default 99.99).",
        "- **Float floor**: a fresh process runs plain onnxruntime float inference over the same N samples in the "
        "same batches (session creation included), in turns with q8studio's runs of the same row so that both "
        "see the same machine; its peak RSS is the baseline of a process that just runs the model. "
        "\"q8studio/floor\" is q8studio's end-to-end time over the floor, \"pass/floor\" its calibration "
        "pass over the floor.",
        "- **Peak RSS**: `ru_maxrss` from `os.wait4` of each worker (imported libraries included; the orchestrating "
        "process stays small, since a child's ru_maxrss starts at its parent's high-water mark). torch, installed "
        "in the development environment only to rebuild the demo, is hidden from the workers as in a plain "
        "`pip install q8studio`: `quant_pre_process` would otherwise import it, adding ~1 s and ~190 MB to both "
        f"tools. A watchdog polls VmRSS every 0.2 s and kills a worker above {info['rss_limit']} (or when the "
        "machine runs low on memory).",
        f"- **Latency**: `q8studio.core.evaluate.measure_latency`, median of {info['latency_runs']} alternating "
        "batch-1 runs after 5 warm-up runs, onnxruntime's default threads (2), same process for both models.",
        "",
    ]
    for bench, rows, scores in models:
        lines += _model_block(bench, rows, scores)
    return "\n".join(lines).rstrip() + "\n"


def _repeats(count: int) -> str:
    if count == 1:
        return "each time and peak RSS is from a single run"
    return f"each time is the fastest of {count} runs and each peak RSS the highest of them"


def _model_block(bench: Bench, rows: list[Row], scores: dict) -> list[str]:
    labelled = scores["labelled"]
    score = (
        f"int8 top-1 on {scores['count']} labelled test samples (float top-1 {_pct(scores['float_score'])})"
        if labelled else f"int8 top-1 agreement with the float model on {scores['count']} evaluation images"
    )
    ort_batches = ", ".join(f"{b} at N={n}" for n, b in sorted({(r.samples, r.ort.batch) for r in rows}))
    return [
        f"### {bench.name}",
        "",
        f"{bench.description}. q8studio and the float floor: batches of {bench.batch} (q8studio's "
        f"`batch_size`); onnxruntime: batches of {ort_batches}. Accuracy: {score}.",
        "",
        *main_table(rows, labelled),
        "",
        "Targets:",
        "",
        *target_lines(rows),
        "",
        f"Where q8studio's time goes at N={TIME_TARGET_SAMPLES} (the fastest run's phases; \"load\" reads the model "
        "and opens the data):",
        "",
        *phase_table(rows),
        "",
        "Each exported int8 model against the float model: the SQNR of its output on the evaluation samples "
        "(higher is closer to float), and the median batch-1 latency of both (int8/float > 1: int8 is slower):",
        "",
        *exported_table(rows),
        "",
    ]


def machine_section() -> str:
    mem_kb = next((int(line.split()[1]) for line in text_lines("/proc/meminfo") if line.startswith("MemTotal:")), 0)
    return "\n".join([
        f"## {MACHINE_TITLE}",
        "",
        f"- nproc: {len(os.sched_getaffinity(0))}",
        f"- RAM: {mem_kb / 2**20:.1f} GiB",
        "- Each section names the CPU model and library versions it was measured with.",
        "- Shared with other engineers' test runs while benchmarking: timings are noisy.",
    ]) + "\n"


def update_results_file(path: Path, section: str, machine: str) -> None:
    """Replace (or append) this benchmark's section; add the Machine section at the top if there is none."""
    text = path.read_text() if path.exists() else "# Benchmark results\n"
    text = replace_section(text, SECTION_TITLE, section)
    if not re.search(rf"^## {MACHINE_TITLE}\s*$", text, flags=re.MULTILINE):
        title, _, rest = text.partition("\n")
        text = f"{title}\n\n{machine}\n{rest.lstrip()}" if title.startswith("# ") else f"{machine}\n{text}"
    path.write_text(text.rstrip() + "\n")
