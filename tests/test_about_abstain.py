"""Per-speaker views (`about=`, `Memory.people`) and the "no evidence in memory" signal (`Memory.evidence`,
`Context.evidence`), on a small multi-party conversation written for these tests; on every backend."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from convmem.bench.abstention import auc, evaluate, fit_logistic
from convmem.cli import main
from convmem.errors import InputError
from convmem.retrieve import abstain
from convmem.retrieve.about import about_mask


def turns(*pairs):
    return [{"speaker": who, "role": "user", "text": text} for who, text in pairs]


# a group chat of Ana (the memory's owner) with two friends; Bea is also mentioned by others
GROUP = [
    {"user": "ana", "session_id": "g1", "started_at": "2024-01-10T18:00:00Z", "turns": turns(
        ("Ana", "Anyone up for hiking this weekend?"),
        ("Bea Silva", "I can't, my knee still hurts from the marathon."),
        ("Carl", "I'm in! I just bought new hiking boots."),
        ("Ana", "Great, Carl. Bea, get well soon!"))},
    {"user": "ana", "session_id": "g2", "started_at": "2024-02-02T19:00:00Z", "turns": turns(
        ("Carl", "The hike was amazing, the lake was frozen."),
        ("Ana", "Bea would have loved the frozen lake."),
        ("Bea Silva", "Next time! I started physiotherapy for the knee."),
        ("Carl", "My boots were too small though, I returned them."))},
]


@pytest.fixture
def group(memory):
    for s in GROUP:
        assert memory.add_session(s) == "added"
    return memory


def test_people_lists_every_speaker_with_counts_and_dates(group):
    people = {p["name"]: p for p in group.people("ana")}
    assert set(people) == {"Ana", "Bea Silva", "Carl"}
    bea = people["Bea Silva"]
    assert (bea["turns"], bea["sessions"], bea["mentioned_by_others"]) == (2, 2, 2)
    assert bea["first_seen"].startswith("2024-01-10") and bea["last_seen"].startswith("2024-02-02")
    assert people["Carl"]["turns"] == 3 and people["Carl"]["mentioned_by_others"] == 1
    assert group.people("nobody") == []


def test_about_marks_turns_spoken_by_or_mentioning_the_person(group):
    index = group.index("ana")
    for name in ("Bea", "bea silva", "BEA"):
        marked = [index.rows[i].text for i in np.flatnonzero(about_mask(index, name))]
        assert marked == ["I can't, my knee still hurts from the marathon.", "Great, Carl. Bea, get well soon!",
                          "Bea would have loved the frozen lake.", "Next time! I started physiotherapy for the knee."]
    # a name nobody speaks: only the turns that mention it
    assert not about_mask(index, "Zoe").any()


def test_search_about_ranks_the_persons_turns_first_but_keeps_the_others(group):
    plain = group.search("what happened with the boots and the knee?", user="ana", k=8)
    about = group.search("what happened with the boots and the knee?", user="ana", k=8, about="Bea")
    assert {h.turn_id for h in plain} == {h.turn_id for h in about}  # a boost, not a filter
    top = [h.speaker for h in about[:2]]
    assert top == ["Bea Silva", "Bea Silva"]
    assert any(h.speaker == "Carl" for h in about)
    ctx = group.context("what happened with the knee?", user="ana", about="Bea", budget_tokens=400)
    assert "physiotherapy" in ctx.text


@pytest.mark.parametrize("bad", ["", "   ", 42, "!!!", "x" * 300])
def test_bad_about_is_an_input_error(group, bad):
    with pytest.raises(InputError):
        group.search("knee", user="ana", about=bad)


def test_evidence_features_and_signal(group):
    ev = group.evidence("Did Bea start physiotherapy for her knee?", user="ana")
    assert ev.features["term_coverage"] == 1.0 and ev.features["names_speaker"] == 1.0
    assert ev.features["named_log_ratio"] > 0  # Bea's own turn matches best
    # the same question asked about the wrong speaker: Bea's turn is the one that matches
    wrong = group.evidence("Did Carl start physiotherapy for his knee?", user="ana")
    assert wrong.features["named_log_ratio"] < 0
    assert wrong.confidence < ev.confidence
    unknown = group.evidence("What is the name of my dentist in Porto?", user="ana")
    assert unknown.features["term_coverage"] < 0.5 and unknown.features["names_speaker"] == 0.0
    assert unknown.confidence < ev.confidence and not unknown.found
    assert ev.found
    empty = group.evidence("anything", user="nobody")
    assert (empty.confidence, empty.found) == (0.0, False)


def test_context_says_when_memory_has_no_evidence(group):
    found = group.context("Did Bea start physiotherapy for her knee?", user="ana", budget_tokens=500)
    assert found.evidence["found"] and "No evidence in memory" not in found.text
    missing = group.context("What is the name of my dentist in Porto?", user="ana", budget_tokens=500)
    assert not missing.evidence["found"] and missing.evidence["confidence"] < 0.5
    assert missing.text.startswith("Memory:") and missing.text.rstrip().endswith("rather than guess.")
    assert "No evidence in memory for this question" in missing.text
    assert missing.tokens <= 500
    for budget in (40, 90, 130):  # the note never pushes a context over its budget
        assert group.context("What is the name of my dentist in Porto?", user="ana",
                             budget_tokens=budget).tokens <= budget


def test_cli_about_people_and_evidence(group, store_location):
    if not store_location.endswith(".db"):
        pytest.skip("the CLI test uses the SQLite file")
    group.close()
    runner = CliRunner()
    out = runner.invoke(main, ["people", "--user", "ana", "--db", store_location, "--json"])
    assert out.exit_code == 0
    assert [p["name"] for p in json.loads(out.output)] == ["Ana", "Carl", "Bea Silva"]  # most turns, then name
    out = runner.invoke(main, ["search", "knee", "--user", "ana", "--about", "Bea", "-k", "1", "--json",
                               "--db", store_location])
    assert out.exit_code == 0 and json.loads(out.output)[0]["speaker"] == "Bea Silva"
    out = runner.invoke(main, ["context", "dentist in Porto?", "--user", "ana", "--json", "--db", store_location])
    assert out.exit_code == 0 and json.loads(out.output)["evidence"]["found"] is False
    out = runner.invoke(main, ["search", "knee", "--user", "ana", "--about", "", "--db", store_location])
    assert out.exit_code == 2 and "about must be" in out.output


def test_tools_take_about_and_return_evidence(group):
    from convmem.tools import TOOLS, call_tool

    names = {t["function"]["name"]: t["function"]["parameters"]["properties"] for t in TOOLS}
    assert "about" in names["search"] and "about" in names["context"]
    hits = call_tool(group, "search", {"query": "knee", "about": "Bea", "k": 1}, user="ana")["hits"]
    assert hits[0]["speaker"] == "Bea Silva"
    ctx = call_tool(group, "context", {"query": "dentist in Porto?"}, user="ana")
    assert ctx["evidence"]["found"] is False


def test_auc_evaluate_and_logistic_fit():
    assert auc([0.9, 0.8, 0.1], [True, True, False]) == 1.0
    assert auc([0.5, 0.5], [True, False]) == 0.5
    assert auc([0.1], [True]) is None
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 2))
    y = (x[:, 0] - 2 * x[:, 1] + rng.normal(scale=0.5, size=400) > 0).astype(float)
    intercept, coef = fit_logistic(x, y)
    assert coef[0] > 0 > coef[1] and abs(coef[1]) > abs(coef[0])
    rows = [{"no_evidence": bool(t), "features": dict.fromkeys(abstain.FEATURES, 0.0)} for t in y]
    p = 1 / (1 + np.exp(-(intercept + x @ coef)))
    result = evaluate(rows, p, 0.5)
    assert result["auc"] > 0.9 and result["precision"] > 0.8 and result["recall"] > 0.8


# --------------------------------------------------------------------------------------------- cross-validation


def rows_for_cv(n_pos, n_neg, prefix="q"):
    """features.jsonl rows with distinct ids; features all 0 (the tests set them)."""
    return [{"question_id": f"{prefix}{i}", "no_evidence": i < n_pos, "features": dict.fromkeys(abstain.FEATURES, 0.0)}
            for i in range(n_pos + n_neg)]


def test_cv_split_is_deterministic_stratified_and_predicts_each_question_once(monkeypatch):
    from convmem.bench import abstention as ab

    rows = rows_for_cv(13, 50, "lme") + rows_for_cv(31, 100, "locomo")
    groups = ["lme"] * 63 + ["locomo"] * 131
    rng = np.random.default_rng(1)
    for r in rows:
        r["features"] = {f: float(v) for f, v in zip(abstain.FEATURES, rng.normal(size=len(abstain.FEATURES)))}
    fold = ab.assign_folds(rows, 5, groups)
    assert fold.tolist() == ab.assign_folds(rows, 5, groups).tolist()
    # the order of the rows does not matter: the fold follows the question id
    order = rng.permutation(len(rows))
    shuffled = ab.assign_folds([rows[i] for i in order], 5, [groups[i] for i in order])
    assert dict(zip((rows[i]["question_id"] for i in order), shuffled.tolist())) == \
        {r["question_id"]: int(f) for r, f in zip(rows, fold)}
    # stratified: every fold gets 2-3 of LongMemEval's 13 positives and 6-7 of LoCoMo's 31
    for g, n_pos in (("lme", 13), ("locomo", 31)):
        pos = [f for f, r, gg in zip(fold, rows, groups) if gg == g and r["no_evidence"]]
        counts = np.bincount(pos, minlength=5)
        assert counts.sum() == n_pos and counts.max() - counts.min() <= 1
    assert set(fold.tolist()) == set(range(5))

    fitted, predicted = [], []
    real_fit, real_p = ab.fit_rows, ab.probabilities
    monkeypatch.setattr(ab, "fit_rows", lambda rs: fitted.append({r["question_id"] for r in rs}) or real_fit(rs))
    monkeypatch.setattr(ab, "probabilities",
                        lambda rs, i, w: predicted.append([r["question_id"] for r in rs]) or real_p(rs, i, w))
    fold2, p = ab.out_of_fold(rows, 5, groups)
    assert fold2.tolist() == fold.tolist() and np.isfinite(p).all() and len(p) == len(rows)
    every = [q for qs in predicted for q in qs]
    assert sorted(every) == sorted(r["question_id"] for r in rows)  # each question predicted exactly once
    assert len(fitted) == len(predicted) == 5
    for seen, held_out in zip(fitted, predicted):  # each model saw all the others and none of its own
        assert not seen & set(held_out) and len(seen) + len(held_out) == len(rows)


def test_cv_out_of_fold_differs_from_in_sample_and_lands_in_fit_json(tmp_path):
    """Each fold's feature-label relation is the other fold's reversed: a model that saw the held-out fold
    (in-sample) finds no signal (AUC 0.5); models that never saw it predict it backwards (AUC near 0)."""
    from convmem.bench.abstention import assign_folds, cross_validate
    from convmem.bench.common import write_jsonl

    a, b = rows_for_cv(6, 18, "a"), rows_for_cv(4, 12, "b")
    rows, groups = a + b, ["a"] * len(a) + ["b"] * len(b)
    for r, f in zip(rows, assign_folds(rows, 2, groups)):
        r["features"]["term_coverage"] = float(r["no_evidence"] == (f == 0))
    cv = cross_validate({"a": a, "b": b}, 2)
    assert cv["fold_sizes"] == [20, 20] and cv["fold_no_evidence"] == [5, 5]
    pooled = cv["pooled"]
    assert pooled["in_sample"]["auc"] == pytest.approx(0.5)
    assert pooled["out_of_fold"]["auc"] < 0.1 and pooled["out_of_fold"]["brier"] > pooled["in_sample"]["brier"]
    assert cv["by_run"]["a"]["out_of_fold"]["auc"] < 0.1
    assert set(cv["by_run"]["b"]["out_of_fold"]) == {"auc", "brier", "at_0.5", "at_0.3"}
    assert set(cv["by_run"]["b"]["out_of_fold"]["at_0.3"]) == {"flagged", "precision", "recall"}

    dirs = [tmp_path / "a", tmp_path / "b"]
    for d, rs in zip(dirs, (a, b)):
        d.mkdir()
        write_jsonl(d / "features.jsonl", rs)
    out = CliRunner().invoke(main, ["bench", "abstention-fit", *map(str, dirs), "--folds", "2"])
    assert out.exit_code == 0, out.output
    assert "out-of-fold: AUC" in out.output and "in-sample: AUC" in out.output
    saved = json.loads((dirs[0] / "fit.json").read_text())["cross_validation"]
    assert saved["folds"] == 2 and saved["pooled"]["out_of_fold"]["auc"] == pytest.approx(pooled["out_of_fold"]["auc"])
    # without --folds, fit.json has no cross-validation
    assert CliRunner().invoke(main, ["bench", "abstention-fit", *map(str, dirs)]).exit_code == 0
    assert "cross_validation" not in json.loads((dirs[0] / "fit.json").read_text())


@pytest.mark.parametrize("folds, message", [("1", "folds must be 0 (no cross-validation) or at least 2, got 1"),
                                             ("6", "cannot split 5 questions without evidence and 15 with evidence "
                                                   "into 6 folds (each fold needs both kinds): use at most 5 folds")])
def test_cv_bad_folds_is_one_line(tmp_path, folds, message):
    from convmem.bench.common import write_jsonl

    write_jsonl(tmp_path / "features.jsonl", rows_for_cv(5, 15))
    out = CliRunner().invoke(main, ["bench", "abstention-fit", str(tmp_path), "--folds", folds])
    assert out.exit_code == 2 and out.output == f"Error: {message}\n"
    assert not (tmp_path / "fit.json").exists()
