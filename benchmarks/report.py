"""Result rows as text: terminal and markdown tables, the geometric-mean summary, and the
files results.md and speedup.png. The models and zoo suites render their own tables with
the helpers here."""

import math

from .cases import MODES, SUITES
from .peers import FILTER2D_BWD_NAME, PEERS


def fmt_ms(v):
    if v is None:
        return "-"
    for limit, digits in ((100, 0), (10, 1), (1, 2), (0.1, 3)):
        if v >= limit:
            return f"{v:.{digits}f}"
    return f"{v:.4f}"


def fmt_num(v, spec):
    return "-" if v is None else format(v, spec)


def present(rows, names, key):
    """The names, in order, that some row has under `key` ("timings" or "speedup")."""
    return [n for n in names if any(n in r[key] for r in rows)]


def table(rows, torch_names):
    """Header and cells of one suite/mode table: torch and, where they ran, the image
    libraries, as milliseconds and as ratios to fastconv."""
    timed = present(rows, list(torch_names) + list(PEERS), "timings")
    ratios = present(rows, timed + [FILTER2D_BWD_NAME], "speedup")
    header = ["case", "shape", "naive ms", "fastconv ms (iqr)"]
    header += [f"{n} ms" for n in timed]
    header += [f"{n}/fc" for n in ratios] + ["naive/fc", "fc GFLOP/s", "% peak"]
    header += ["max err fc", "max err torch"]
    memory_cols = any("extra_mb" in r for r in rows)
    if memory_cols:
        header += ["fc extra MB", "torch extra MB"]
    body = []
    for r in rows:
        t, st = r["timings"], r["status"]

        def ms(name, st=st, t=t):
            if name in t:
                return fmt_ms(t[name]["ms"])
            s = st.get(name, "-")
            return "skipped" if s.startswith("skipped") else ("error" if "error" in s else "-")

        fc = t.get("fastconv")
        fc_cell = ms("fastconv")
        if fc and fc["ms"] > 0:
            fc_cell += f" ({100 * fc['iqr_ms'] / fc['ms']:.0f}%)"
        cells = [r["case"], r["shape"], ms("naive"), fc_cell] + [ms(n) for n in timed]
        cells += [fmt_num(r["speedup"].get(n), ".2f") + "x" * (n in r["speedup"]) for n in ratios]
        naive = r["speedup"].get("naive")
        cells += [fmt_num(naive, ".0f") + "x" * (naive is not None)]
        cells += [
            fmt_num(r["gflops"].get("fastconv"), ".1f"),
            fmt_num(r["pct_peak"].get("fastconv"), ".1f"),
            fmt_num(r["max_abs_err"].get("fastconv"), ".1e"),
            fmt_num(r["max_abs_err"].get("torch"), ".1e"),
        ]
        if memory_cols:
            mem = r.get("extra_mb", {})
            cells += [fmt_num(mem.get("fastconv"), ".1f"), fmt_num(mem.get("torch"), ".1f")]
        body.append(cells)
    return header, body


def render_text(header, body, left=2):
    """A terminal table; the first `left` columns (names) align left, numbers right."""
    widths = [max(len(str(c)) for c in col) for col in zip(header, *body)]

    def line(cells):
        out = [
            f"{c:<{w}}" if i < left else f"{c:>{w}}" for i, (c, w) in enumerate(zip(cells, widths))
        ]
        return "  ".join(out)

    return "\n".join([line(header), "  ".join("-" * w for w in widths)] + [line(c) for c in body])


def render_markdown(header, body, left=2):
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join(["---"] * left + ["---:"] * (len(header) - left)) + "|",
    ]
    lines += ["| " + " | ".join(c.replace("|", "/") for c in cells) + " |" for cells in body]
    return "\n".join(lines)


SUMMARY_TITLE = "== Geometric-mean speed-up of fastconv (baseline time / fastconv time)"


def geomean(values):
    values = [v for v in values if v and v > 0]
    if not values:
        return None
    return math.exp(sum(math.log(v) for v in values) / len(values))


def summary(rows, suites, baselines):
    """Geometric-mean speed-up of fastconv over each baseline, per suite and mode, with the
    worst case."""
    baselines = present(rows, list(baselines) + list(PEERS) + [FILTER2D_BWD_NAME], "speedup")
    header = ["suite", "mode"] + [f"{b}/fastconv geomean" for b in baselines]
    body = []
    for suite in suites + ["all"]:
        for mode in MODES:
            sel = [r for r in rows if r["mode"] == mode and suite in ("all", r["suite"])]
            cells = [suite, mode]
            for b in baselines:
                vals = [r["speedup"][b] for r in sel if b in r["speedup"]]
                g = geomean(vals)
                worst = f", min {min(vals):.2f}x" if len(vals) > 1 else ""
                cells.append(f"{g:.2f}x ({len(vals)} cases{worst})" if g else "-")
            body.append(cells)
    return header, body


def report(rows, suites, torch_names, markdown=False):
    render = render_markdown if markdown else render_text
    parts = []
    for suite in suites:
        for mode in MODES:
            sel = [r for r in rows if r["suite"] == suite and r["mode"] == mode]
            if not sel:
                continue
            reason = SUITES[suite].reason
            title = f"{suite}, {mode}: {reason}"
            parts.append(("### " if markdown else "== ") + title)
            parts.append(render(*table(sel, torch_names)))
            parts.append("")
    if len(suites) > 1 or markdown:
        parts.append(("### " if markdown else "== ") + SUMMARY_TITLE.lstrip("= "))
        parts.append(render(*summary(rows, suites, torch_names + ["naive"])))
    return "\n".join(parts) + "\n"


def write_markdown(path, rows, meta, torch_names, sections=()):
    """results.md: the run's description, the tables of the convolution suites in `rows`
    and then `sections`, markdown the other suites render (models, zoo)."""
    suites = [s for s in meta["suites"] if s in SUITES]
    with open(path, "w") as f:
        where = meta["gpu"] or f"{meta['cpu_model']} ({meta.get('cpu_isa', '?')} kernels)"
        f.write(f"fastconv benchmarks, {meta['date']}: {where}, ")
        f.write(f"{meta['threads']} threads, {meta['dtype']}, torch {meta['torch']}, peak ")
        f.write(f"{fmt_num(meta['peak_gflops'], '.0f')} GFLOP/s ({meta['peak_formula']}).")
        peers = ", ".join(f"{k} ({v})" for k, v in meta.get("peers", {}).items())
        f.write(f" Image-filtering peers: {peers}.\n\n" if peers else "\n\n")
        if suites:
            f.write(report(rows, suites, torch_names, markdown=True))
        for section in sections:
            f.write("\n" + section)


def write_plot(path, rows, torch_names, meta):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cases = list(dict.fromkeys((r["suite"], r["case"]) for r in rows))
    sweep = [r for r in rows if r["suite"] == "sweep"]
    fig = plt.figure(figsize=(15, max(6.0, 0.32 * len(cases) + 2)))
    grid = fig.add_gridspec(2, 2 if sweep else 1, width_ratios=[1.2, 1] if sweep else None)
    ax = fig.add_subplot(grid[:, 0])
    series = [(mode, tuple(torch_names), f"{mode} vs torch") for mode in MODES]
    if any("cv2.filter2D" in r["speedup"] for r in rows):
        series.append(("fwd", ("cv2.filter2D",), "fwd vs cv2.filter2D"))
    height = 0.8 / len(series)
    colors = ("tab:blue", "tab:orange", "tab:green")
    for k, ((mode, names, label), color) in enumerate(zip(series, colors)):
        ys, vals = [], []
        for i, key in enumerate(cases):
            row = next(r for r in rows if (r["suite"], r["case"]) == key and r["mode"] == mode)
            # against the fastest configuration measured (cudnn.benchmark on or off)
            best = [row["speedup"][n] for n in names if n in row["speedup"]]
            if best:
                ys.append(i + (k - (len(series) - 1) / 2) * height)
                vals.append(min(best))
        ax.barh(ys, vals, height=height, color=color, label=label)
    ax.axvline(1.0, color="black", linewidth=1)
    ax.set_xscale("log")
    ax.set_yticks(range(len(cases)))
    ax.set_yticklabels([f"{s}: {c}" for s, c in cases], fontsize=8)
    ax.set_ylim(len(cases) - 0.5, -0.5)  # first case on top
    ax.set_xlabel("speed-up (baseline time / fastconv time, log scale)")
    ax.set_title(f"fastconv vs torch.nn.functional.conv2d, {meta['device_name']}, {meta['dtype']}")
    ax.legend(loc="lower right")
    ax.grid(axis="x", which="both", alpha=0.3)

    for panel, (prefix, xlabel, xkey) in enumerate(
        (
            ("img", "image size (pixels per side), 3x3 kernel", "H"),
            ("k", "kernel size, 512^2 image", "R"),
        )
    ):
        if not sweep:
            break
        ax = fig.add_subplot(grid[panel, 1])
        for mode, style in zip(MODES, ("-", "--")):
            sel = [r for r in sweep if r["mode"] == mode and r["case"].startswith(prefix)]
            for name, color in (("fastconv", "tab:green"), ("torch", "tab:red"), ("naive", "gray")):
                pts = [
                    (r["params"][xkey], r["timings"][name]["ms"])
                    for r in sel
                    if name in r["timings"]
                ]
                if pts:
                    ax.plot(*zip(*pts), style, marker="o", color=color, label=f"{name} {mode}")
        ax.set_xscale("log", base=2)
        sizes = sorted({r["params"][xkey] for r in sweep if r["case"].startswith(prefix)})
        ax.set_xticks(sizes, [str(v) for v in sizes])
        ax.minorticks_off()
        ax.set_yscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("time per call (ms)")
        ax.grid(which="both", alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
