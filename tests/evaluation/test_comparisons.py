"""The statistics of comparing k procedures on the same folds, against reference values: SciPy's Friedman
test, Demšar's table of critical values, and the Bayesian correlated t-test computed from the paper's formulas."""

import math

import numpy as np
import pytest
from scipy import stats

from reproai.evaluation import (
    ROPES,
    bayesian_correlated_ttest,
    default_rope,
    friedman_test,
    mean_ranks,
    nemenyi_critical_difference,
    nemenyi_pvalues,
)

# Demšar (2006), Table 5(a): critical values q_0.05 of the two-tailed Nemenyi test, for k = 2..10.
DEMSAR_Q05 = {2: 1.960, 3: 2.343, 4: 2.569, 5: 2.728, 6: 2.850, 7: 2.949, 8: 3.031, 9: 3.102, 10: 3.164}


def test_mean_ranks_give_rank_one_to_the_best_and_share_ties():
    scores = np.array([[0.9, 0.8, 0.7], [0.6, 0.6, 0.9], [0.5, 0.7, 0.6]])
    assert mean_ranks(scores).tolist() == pytest.approx([(1 + 2.5 + 3) / 3, (2 + 2.5 + 1) / 3, (3 + 1 + 2) / 3])
    # lower is better (a loss): the order reverses
    assert mean_ranks(scores, greater_is_better=False).tolist() == pytest.approx(
        [(3 + 1.5 + 1) / 3, (2 + 1.5 + 3) / 3, (1 + 3 + 2) / 3]
    )


def test_friedman_matches_scipy_and_demsars_formula():
    rng = np.random.default_rng(3)
    scores = rng.normal(size=(8, 4)) + np.array([0.0, 0.3, 0.6, 0.9])
    got = friedman_test(scores)
    reference = stats.friedmanchisquare(*scores.T)
    assert got["statistic"] == pytest.approx(reference.statistic) and got["p_value"] == pytest.approx(reference.pvalue)
    # Demšar (2006) eq. 1: chi2_F = 12 N / (k (k + 1)) (sum_j R_j^2 - k (k + 1)^2 / 4), with R_j the mean ranks
    n, k = scores.shape
    r = mean_ranks(scores)
    assert got["statistic"] == pytest.approx(12 * n / (k * (k + 1)) * (np.sum(r**2) - k * (k + 1) ** 2 / 4))
    assert got["df"] == k - 1


def test_friedman_needs_three_procedures():
    with pytest.raises(ValueError, match="at least 3 procedures"):
        friedman_test(np.ones((5, 2)))


@pytest.mark.parametrize("k", sorted(DEMSAR_Q05))
def test_critical_difference_matches_demsars_table(k):
    n = 14
    expected = DEMSAR_Q05[k] * math.sqrt(k * (k + 1) / (6 * n))
    assert nemenyi_critical_difference(k, n) == pytest.approx(expected, abs=2e-3)


def test_nemenyi_pvalues_are_symmetric_and_small_only_for_far_apart_ranks():
    rng = np.random.default_rng(0)
    scores = rng.normal(scale=0.01, size=(20, 3)) + np.array([0.0, 0.001, 0.5])
    p = nemenyi_pvalues(scores, ["a", "b", "c"])
    assert np.allclose(p.to_numpy(), p.to_numpy().T)
    assert p.loc["a", "c"] < 0.05 and p.loc["b", "c"] < 0.05 and p.loc["a", "b"] > 0.05


def _by_hand(a, b, rope, runs=1):
    """Benavoli et al. (2017), eq. 7-8: the posterior of the mean difference is a Student t with n - 1 df,
    location mean(b - a), scale sqrt((1/n + rho / (1 - rho)) s^2), rho = 1 / k for k folds."""
    d = np.asarray(b) - np.asarray(a)
    n = len(d)
    k = n / runs
    rho = 1 / k
    scale = math.sqrt((1 / n + rho / (1 - rho)) * np.var(d, ddof=1))
    posterior = stats.t(df=n - 1, loc=d.mean(), scale=scale)
    p_a = posterior.cdf(-rope)
    p_b = 1 - posterior.cdf(rope)
    return p_a, 1 - p_a - p_b, p_b


@pytest.mark.parametrize("runs", [1, 2])
def test_bayesian_correlated_ttest_matches_the_papers_formulas(runs):
    rng = np.random.default_rng(1)
    a = 0.80 + rng.normal(scale=0.02, size=10)
    b = a - 0.012 + rng.normal(scale=0.01, size=10)
    got = bayesian_correlated_ttest(a, b, rope=0.01, runs=runs)
    p_a, p_eq, p_b = _by_hand(a, b, 0.01, runs)
    assert got["p_a_better"] == pytest.approx(p_a, abs=1e-6)
    assert got["p_equivalent"] == pytest.approx(p_eq, abs=1e-6)
    assert got["p_b_better"] == pytest.approx(p_b, abs=1e-6)
    assert got["mean_difference"] == pytest.approx(np.mean(a - b))
    assert got["p_a_better"] + got["p_equivalent"] + got["p_b_better"] == pytest.approx(1)


def test_bayesian_correlated_ttest_for_a_loss_calls_the_lower_one_better():
    rng = np.random.default_rng(2)
    low = 0.30 + rng.normal(scale=0.01, size=10)
    high = low + 0.1
    assert bayesian_correlated_ttest(low, high, rope=0.02, greater_is_better=False)["p_a_better"] > 0.99
    assert bayesian_correlated_ttest(low, high, rope=0.02, greater_is_better=True)["p_b_better"] > 0.99


def test_identical_scores_are_practically_equivalent():
    a = np.array([0.7, 0.8, 0.9])
    assert bayesian_correlated_ttest(a, a.copy(), rope=0.01)["p_equivalent"] == 1.0


def test_default_rope_per_metric():
    assert default_rope("roc_auc") == 0.01 and default_rope("brier") == ROPES["brier"] == 0.005
    assert default_rope("a_metric_of_ones_own") == 0.01
