"""Reading the signal's evaluation: tables and text from a training report, an artifact's meta.json
or an evaluation of a saved model. Plain Python (no torch), so the app and the CLI share it."""

from __future__ import annotations

import math

MODEL_LABELS = {
    "logreg_all": "logistic, all features",
    "logreg_book": "logistic, book lean",
    "mlp": "MLP",
    "prior": "class prior (train)",
    "persistence": "persistence",
    "logreg_imb": "logistic on imb_1",
    "fallback": "rule-based fallback",
}
ORDER = ("logreg_all", "logreg_book", "mlp", "prior", "persistence", "logreg_imb", "fallback")
SCORES = ("log_loss", "auc", "direction_auc", "ece", "accuracy")


def _fmt(v, spec: str = ".4f") -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, spec)


def score_rows(horizons: dict, window: str = "test", shipped: str | None = None) -> list[dict]:
    """One row per (horizon, model) of a report's `horizons` (a training report: scores under
    `window`; an evaluation: under `scores`): the table the app and the text show."""
    rows = []
    for key, h in horizons.items():
        scores = h.get(window) or h.get("scores") or {}
        for name in [n for n in ORDER if n in scores] + [n for n in scores if n not in ORDER]:
            s = scores[name]
            rows.append({"horizon": key, "model": MODEL_LABELS.get(name, name), "key": name,
                         "shipped": name == shipped, **{k: s.get(k) for k in ("n", *SCORES)}})
    return rows


def _table(rows: list[dict], main: str | None) -> list[str]:
    lines = [f"{'horizon':<8} {'model':<26} {'log loss':>9} {'AUC':>7} {'dir AUC':>8} {'ECE':>7} {'n':>7}"]
    for r in rows:
        mark = " *" if r["shipped"] and r["horizon"] == main else ""
        lines.append(f"{r['horizon']:<8} {r['model'] + mark:<26} {_fmt(r['log_loss']):>9} {_fmt(r['auc'], '.3f'):>7} "
                     f"{_fmt(r['direction_auc'], '.3f'):>8} {_fmt(r['ece'], '.3f'):>7} {r['n'] or 0:>7,}")
    return lines


def render_report(report: dict) -> str:
    """A training report as text: windows, per-horizon scores of every model and baseline on the
    test window, the selection, the verdict, calibration, walk-forward and other catalogs."""
    lab, win, sel = report["label"], report["windows"], report["selection"]
    main = f"{sel['main_horizon_s']:g}s"
    lines = [
        f"signal model {report['model_id']}  (seed {report['seed']}, main horizon {main}, flat band "
        f"+-{lab['threshold_bps']:g} bps, trained on {report['catalog']})",
        "",
        f"{'window':<7} {'start':<32} {'end':<32} {'rows':>7}   labelled per horizon",
    ]
    for name in ("train", "valid", "test"):
        w = win[name]
        lines.append(f"{name:<7} {w['start']:<32} {w['end']:<32} {w['rows']:>7}   "
                     + ", ".join(f"{k} {v:,}" for k, v in w["labelled"].items()))
    lines += ["", "Out-of-sample, test window (* = shipped; dir AUC: p_up - p_down ranking up over down moves):"]
    lines += _table(score_rows(report["horizons"], "test", sel["model"]), main)
    lines += ["", "selection: " + sel["rule"]]
    for key, h in report["horizons"].items():
        lines.append(f"  {key}: best on valid {MODEL_LABELS.get(h['best_on_valid'], h['best_on_valid'])}, valid gain "
                     f"over the logistic on imb_1 {_fmt(h['valid_gain_vs_logreg_imb'], '+.2%')}, windows span "
                     f"{_fmt(h.get('spans'), ',.0f')} horizons")
    lines += ["", "VERDICT: " + report["verdict"]["text"]]
    cal = report["calibration"]
    lines += [
        "",
        f"calibration of the shipped model: temperature {cal['temperature']:.4f} (fitted on valid); ECE before -> "
        f"after: valid {cal['valid']['before']['ece']:.4f} -> {cal['valid']['after']['ece']:.4f}, "
        f"test {cal['test']['before']['ece']:.4f} -> {cal['test']['after']['ece']:.4f}",
    ]
    em = report["expected_move"]
    lines.append("class mean move (train, bps): " + ", ".join(
        f"{c} {m:+.3f}" for c, m in zip(lab["classes"], em["class_mean_move_bps"], strict=True))
        + f"; expected vs realised move on test: corr {_fmt(em['test_corr'], '.3f')}, MAE {em['test_mae_bps']:.3f} bps")
    if report.get("walk_forward"):
        fam = report["walk_forward"][0]["model"]
        lines += ["", f"walk-forward at {main} over the test window (refit on all data before each fold; log loss):",
                  f"{'fold':<5} {'test window (UTC)':<20} {'rows':>6} {MODEL_LABELS.get(fam, fam)[:12]:>12} "
                  f"{'prior':>8} {'logreg imb':>10} {'fallback':>9}"]
        for f in report["walk_forward"]:
            s = f["scores"]
            window = f"{f['test'][0][11:19]}..{f['test'][1][11:19]}"
            lines.append(f"{f['fold']:<5} {window:<20} {f['labelled']:>6} {_fmt(s[fam]['log_loss']):>12} "
                         f"{_fmt(s['prior']['log_loss']):>8} {_fmt(s['logreg_imb']['log_loss']):>10} "
                         f"{_fmt(s['fallback']['log_loss']):>9}")
    for ev in report.get("evaluations") or []:
        lines += ["", render_evaluation(ev, shipped=sel["model"], main=main)]
    if "artifact" in report:
        art = report["artifact"]
        lines += ["", f"artifact: {art['path']} (model.pt {art['model_bytes']} bytes)"]
    if "timing" in report:
        t = report["timing"]
        lines.append(f"time: {t['total_s']:.1f} s (features {t['features_s']:.1f} s, training {t['train_s']:.1f} s)")
    return "\n".join(lines)


def render_evaluation(ev: dict, shipped: str | None = None, main: str | None = None) -> str:
    """Scores on another catalog (from training or from `flashmm train --model DIR --eval-catalog`)."""
    verdict = ev["verdict"]
    shipped = shipped or verdict["model"]
    main = main or f"{verdict['horizon_s']:g}s"
    w = ev["window"]
    lines = [f"on {ev['catalog']} ({'SYNTHETIC' if ev.get('synthetic') else 'recorded'}, {w['start']} .. {w['end']}, "
             f"{w['rows']:,} rows):"]
    lines += _table(score_rows(ev["horizons"], "scores", shipped), main)
    lines.append("VERDICT: " + verdict["text"])
    return "\n".join(lines)


REPORT_KINDS = {"flashmm.signal_report": "training report", "flashmm.signal_evaluation": "evaluation of a saved model",
                "flashmm.ablation": "signal ablation"}


def model_summary_rows(evaluation: dict) -> list[dict]:
    """The test-window table of a run's model (metrics.json["signal"]["evaluation"])."""
    horizons = {key: {"test": scores} for key, scores in (evaluation.get("test") or {}).items()}
    return score_rows(horizons, "test", (evaluation.get("selection") or {}).get("model"))


def ablation_rows(report: dict) -> list[dict]:
    """One row per (group, arm) of an ablation report's summary: what the app's table shows."""
    rows = []
    for group, arms in report.get("summary", {}).items():
        for arm, s in arms.items():
            d = s.get("diff_vs_off") or {}
            rows.append({
                "group": group, "arm": arm, "windows": s.get("windows"), "pnl_mean": s.get("pnl_total_mean"),
                "on_minus_off": d.get("mean"), "ci_low": d.get("ci_low"), "ci_high": d.get("ci_high"),
                "above_zero": d.get("above_zero"), "won": d.get("share_positive"),
                "costs_mean": s.get("costs_paid_mean"),
                **{f"markout_{h}": (s.get("markout_bps") or {}).get(h) for h in ("1s", "5s", "30s")},
                **{f"adverse_{h}": (s.get("adverse_fill_rate") or {}).get(h) for h in ("1s", "5s", "30s")},
            })
    return rows
