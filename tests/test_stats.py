"""The interval and test code on cases whose answer is known."""

import math
import random

from clinitune.stats import BETTER, SAME, WORSE, auc_ci, mcnemar_exact, mean_ci, overall, paired


def test_identical_candidates_show_no_difference():
    rng = random.Random(0)
    a = [float(rng.random() < 0.5) for _ in range(200)]
    p = paired(a, list(a))
    assert p.diff == 0.0 and p.ci95 == (0.0, 0.0) and p.verdict == SAME and p.p == 1.0


def test_all_right_against_all_wrong_is_significant_both_ways():
    assert paired([1.0] * 20, [0.0] * 20).verdict == BETTER
    assert paired([0.0] * 20, [1.0] * 20).verdict == WORSE
    # exact McNemar: 20 discordant pairs all one way, p = 2 * 0.5**20
    assert math.isclose(mcnemar_exact([1.0] * 20, [0.0] * 20), 2 * 0.5**20)


def test_mcnemar_matches_the_binomial_by_hand():
    a = [1.0] * 7 + [0.0] * 2 + [1.0] * 5  # 7 only-a, 2 only-b, 5 both
    b = [0.0] * 7 + [1.0] * 2 + [1.0] * 5
    expected = 2 * sum(math.comb(9, i) for i in range(3)) / 2**9  # two-sided, k = 2 of n = 9
    assert math.isclose(mcnemar_exact(a, b), expected)
    assert paired(a, b).verdict == SAME  # p = 0.18: a difference of 5 in 14 is not enough


def test_small_samples_get_wide_intervals():
    lo, hi = mean_ci([1.0, 0.0] * 2)  # n = 4, mean 0.5
    assert lo <= 0.25 and hi >= 0.75
    lo, hi = mean_ci([1.0, 0.0] * 200)  # n = 400
    assert 0.44 < lo < 0.5 < hi < 0.56


def test_interval_covers_the_true_mean_about_95_percent_of_the_time():
    rng = random.Random(1)
    hits = 0
    for i in range(200):
        xs = [float(rng.random() < 0.3) for _ in range(60)]
        lo, hi = mean_ci(xs, seed=i, n_boot=500)
        hits += lo <= 0.3 <= hi
    assert 0.88 <= hits / 200 <= 0.99


def test_overall_verdict_needs_every_baseline():
    assert overall([BETTER, BETTER]) == BETTER
    assert overall([BETTER, SAME]) == SAME
    assert overall([BETTER, WORSE]) == WORSE
    assert overall([]) == SAME


def test_auc_interval_separates_separable_scores():
    lo, hi = auc_ci([2.0] * 20, [1.0] * 20)
    assert lo == hi == 1.0
    rng = random.Random(2)
    lo, hi = auc_ci([rng.random() for _ in range(40)], [rng.random() for _ in range(40)])
    assert lo < 0.5 < hi


def test_two_examples_never_make_a_continuous_difference_significant():
    p = paired([0.9, 0.95], [0.1, 0.12])  # a large, consistent gap on two examples
    assert p.ci95[0] > 0 and p.test == "sign-flip" and p.p == 0.5 and p.verdict == SAME
    q = paired([0.9 + i / 1000 for i in range(12)], [0.1] * 12)
    assert q.p < 0.001 and q.verdict == BETTER


def test_phrasing_slices_split_scores_by_seen_and_held_out():
    from clinitune.data.phrasings import held_out_version
    from clinitune.data.tasks import icd10_lookup, phrasing_tables
    from clinitune.eval.report import phrasing_rows

    rng = random.Random(1)
    exs = [icd10_lookup.ask(f"p{i}", rng, f"E11.{i}", "a code") for i in range(400)]
    test = [held_out_version(e, 3, phrasing_tables()) for e in exs]
    held = ["/held_out/" in e.phrasing for e in test]
    assert 150 < sum(held) < 250  # about half, chosen by hash
    assert all(e.reply == t.reply and e.group == t.group for e, t in zip(exs, test))
    assert all((e.instruction != t.instruction) == h for e, t, h in zip(exs, test, held))
    # A model perfect on seen phrasings and lost on held-out ones shows the whole gap, significant.
    scores = {"fine_tuned": {"icd10_lookup": [0.0 if h else 1.0 for h in held]}}
    (row,) = phrasing_rows({"icd10_lookup": test}, scores, seed=0)
    assert row["seen"]["mean"] == 1.0 and row["held_out"]["mean"] == 0.0 and row["gap"] == -1.0
    assert row["seen"]["n"] + row["held_out"]["n"] == 400 and row["gap_ci95"] == [-1.0, -1.0]
    # Identical scores on both slices: the gap's interval straddles 0.
    same = [float(random.Random(i).random() < 0.5) for i in range(400)]
    (row,) = phrasing_rows({"icd10_lookup": test}, {"fine_tuned": {"icd10_lookup": same}}, seed=0)
    assert row["gap_ci95"][0] < 0 < row["gap_ci95"][1]


def test_phrasing_slices_pair_the_model_with_each_baseline_within_each_slice():
    from clinitune.data.phrasings import held_out_version
    from clinitune.data.tasks import icd10_lookup, phrasing_tables
    from clinitune.eval.report import EvalResults, phrasing_line, phrasing_rows

    rng = random.Random(2)
    exs = [icd10_lookup.ask(f"p{i}", rng, f"E11.{i}", "a code") for i in range(60)]
    test = [held_out_version(e, 3, phrasing_tables()) for e in exs]
    held = ["/held_out/" in e.phrasing for e in test]
    # Right on every seen phrasing, wrong on every held-out one; the baselines are wrong everywhere.
    scores = {
        "zero_shot": {"icd10_lookup": [0.0] * 60},
        "few_shot": {"icd10_lookup": [0.0] * 60},
        "fine_tuned": {"icd10_lookup": [0.0 if h else 1.0 for h in held]},
    }
    rows = phrasing_rows({"icd10_lookup": test}, scores, seed=0)
    (mine,) = [r for r in rows if r["candidate"] == "fine_tuned"]
    assert mine["verdict"] == {"seen": BETTER, "held_out": SAME}
    assert mine["vs"]["seen"]["few_shot"]["n"] == 60 - sum(held) and mine["vs"]["seen"]["few_shot"]["p"] < 0.05
    assert all("verdict" not in r for r in rows if r["candidate"] != "fine_tuned")
    line = phrasing_line(EvalResults(candidates={}, n_examples=60, seed=0, phrasings=rows))
    assert line.endswith("better than every baseline on seen phrasings in 1 of 1 tasks, on held-out ones in 0")


def test_the_report_says_which_test_answers_state_a_fact_training_taught():
    from clinitune.data.example import instruction
    from clinitune.data.tasks import icd10_lookup
    from clinitune.eval.report import SEEN_FACT, UNSEEN_FACT, EvalResults, fact_counts, fact_rows, facts_section, taught

    rng = random.Random(0)
    # Training taught E11.9 in one wording; the test asks it again in another, and asks I10, never taught.
    train = [icd10_lookup.ask("reference:icd10", rng, "E11.9", "Type 2 diabetes mellitus without complications")]
    test = [icd10_lookup.ask(f"p{i}", rng, code, "x") for i, code in enumerate(["E11.9"] * 20 + ["I10"] * 20)]
    # A knowledge answer counts as taught only word for word; another task's identical answer does not count.
    know_train = [instruction("knowledge", "k", "What is X?", "X is a thing."), instruction("custom", "c", "?", "Y.")]
    know_test = [
        instruction("knowledge", "k2", "Tell me X.", "X is a thing."),
        instruction("knowledge", "k3", "?", "Y."),
    ]
    seen = taught({"icd10_lookup": test, "knowledge": know_test}, train + know_train)
    assert seen == {"icd10_lookup": [True] * 20 + [False] * 20, "knowledge": [True, False]}
    counts = fact_counts(seen)
    assert counts["icd10_lookup"] == {"n": 40, "seen": 20, "share": 0.5} and counts["knowledge"]["seen"] == 1
    # A model that recalls what it was taught and knows nothing else: better on the seen slice only.
    primary = {
        "zero_shot": {"icd10_lookup": [0.0] * 40},
        "few_shot": {"icd10_lookup": [0.0] * 40},
        "fine_tuned": {"icd10_lookup": [1.0] * 20 + [0.0] * 20},
    }
    rows = fact_rows({"icd10_lookup": seen["icd10_lookup"]}, primary, seed=0)
    (mine,) = [r for r in rows if r["candidate"] == "fine_tuned"]
    assert mine[SEEN_FACT]["mean"] == 1.0 and mine[UNSEEN_FACT]["mean"] == 0.0 and mine["gap"] == -1.0
    assert mine["verdict"] == {SEEN_FACT: BETTER, UNSEEN_FACT: SAME}
    md = "\n".join(facts_section(EvalResults({}, 40, 0, facts=counts, fact_slices=rows)))
    assert "| icd10_lookup | 40 | 20 | 50% |" in md and "| icd10_lookup | fine-tuned | 20 |" in md


def test_the_report_names_the_tasks_no_outcome_could_decide():
    from clinitune.eval.metrics import primary
    from clinitune.eval.report import EvalResults, comparison_rows, verdict_line
    from clinitune.eval.run import summarize

    per_example = {  # all right against all wrong, on 4 examples and on 6
        "zero_shot": {"icd10_coding": [0.0] * 4, "text_to_sql": [0.0] * 6},
        "fine_tuned": {"icd10_coding": [1.0] * 4, "text_to_sql": [1.0] * 6},
    }
    scores = {c: {t: [{primary(t): v} for v in vals] for t, vals in per.items()} for c, per in per_example.items()}
    cands = {c: summarize(scores[c], None, seed=0) for c in scores}
    rows = {r["task"]: r for r in comparison_rows(cands, per_example, seed=0)}
    assert rows["text_to_sql"]["verdict"] == BETTER and rows["text_to_sql"]["decidable"]
    assert rows["icd10_coding"]["verdict"] == SAME and not rows["icd10_coding"]["decidable"]
    line = verdict_line(EvalResults(cands, 10, 0, comparison=list(rows.values())))
    assert "no result could be significant on icd10_coding (n=4)" in line and "at least 6 examples" in line
    assert "text_to_sql (n=" not in line
