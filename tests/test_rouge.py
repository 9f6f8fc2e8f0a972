"""ROUGE-L from scratch vs google-research's rouge-score, and the pruned RougePool vs brute force."""

import random
import time

import pytest
from rouge_score import rouge_scorer
from rouge_score import tokenize as rs_tokenize

from course_utils import rouge as R
from course_utils.rouge import perturb_instruction as perturb
from course_utils.rouge import random_instruction as instruction

HAND_PAIRS = [
    ("Write a short poem about the sea.", "Write a poem about the ocean."),
    ("Explain LoRA in 3 sentences!", "explain lora in three sentences"),
    ("Give me 5 tips for learning Python.", "Give five tips to learn python, please."),
    ("Summarize the following article.", "Summarize the article below in one paragraph."),
    ("Translate 'Hello, world' into French.", "Translate the sentence into French: hello world"),
    ("What's the capital of France?", "what is the capital city of france"),
    ("Classify the sentiment: I loved it!!!", "Classify the sentiment of this review."),
    ("Rewrite this e-mail to be more polite.", "Rewrite the email so it sounds polite."),
    ("List the steps of gradient descent", "List the steps of gradient descent"),
    ("Résumé : café, naïve, Zoë", "resume cafe naive zoe"),  # accents are separators in rouge-score
    ("\u212a is the Kelvin sign", "k is the kelvin sign"),  # it lowercases to an ASCII "k"
    ("", "An empty target scores 0."),
    ("!!! ... ???", "only punctuation"),
    ("a a a b", "a b b b"),
    ("the cat sat on the mat", "the mat sat on the cat"),
]


def random_pairs(n: int, seed: int = 0) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    pairs = []
    for i in range(n):
        a = instruction(rng, 1, 20)
        b = perturb(rng, a) if i % 2 else instruction(rng, 1, 20)
        pairs.append((a, b))
    return pairs


@pytest.fixture(scope="module")
def scorer():
    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)


# ---------------------------------------------------------------------------------------------------------------
# Equivalence with rouge-score
# ---------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("text", [t for pair in HAND_PAIRS for t in pair] + [a for a, _ in random_pairs(50)])
def test_tokenize_matches_rouge_score_on_latin_text(text):
    assert R.tokenize(text) == rs_tokenize.tokenize(text, None)


def test_rouge_l_matches_rouge_score(scorer):
    pairs = random_pairs(300) + HAND_PAIRS + [(b, a) for a, b in HAND_PAIRS]
    assert len(pairs) >= 200
    for target, prediction in pairs:
        ref = scorer.score(target, prediction)["rougeL"]
        p, r, f = R.rouge_l_scores(target, prediction)
        assert p == pytest.approx(ref.precision, abs=1e-9), (target, prediction)
        assert r == pytest.approx(ref.recall, abs=1e-9), (target, prediction)
        assert f == pytest.approx(ref.fmeasure, abs=1e-9), (target, prediction)
        assert R.rouge_l(target, prediction) == f


def test_target_prediction_order(scorer):
    # precision divides by the prediction (second argument), recall by the target (first), as in rouge-score
    target, prediction = "a b c d e f", "a b"
    ref = scorer.score(target, prediction)["rougeL"]
    assert (ref.precision, ref.recall) == (1.0, pytest.approx(1 / 3))
    assert R.rouge_l_scores(target, prediction)[:2] == (1.0, pytest.approx(1 / 3))


# ---------------------------------------------------------------------------------------------------------------
# Hand-computed cases
# ---------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("a, b, expected", [
    ("a b c d", "a c d e", 3),
    ("a b c d", "d c b a", 1),
    ("a b c", "a b c", 3),
    ("a b c", "x y z", 0),
    ("", "a b", 0),
    ("a a a b", "a b b b", 2),
    ("abcbdab", "bdcaba", 4),  # CLRS's example, one character per token
])
def test_lcs_length_hand_cases(a, b, expected):
    ta, tb = (a.split(), b.split()) if " " in a + b else (list(a), list(b))
    assert R.lcs_length(ta, tb) == R.lcs_length(tb, ta) == expected


def test_rouge_l_hand_cases():
    # LCS 3 of 4 and 4 tokens: P = R = 3/4
    assert R.rouge_l_scores("a b c d", "a c d e") == (0.75, 0.75, 0.75)
    # LCS 2, target 2 tokens, prediction 4: P = 1/2, R = 1, F = 2 * 2 / 6
    assert R.rouge_l_scores("a b", "a x b y") == (0.5, 1.0, pytest.approx(2 / 3))
    assert R.rouge_l("Same text.", "same TEXT") == 1.0
    assert R.rouge_l("", "") == R.rouge_l("a", "") == R.rouge_l("a", "b") == 0.0
    # token lists are used as given: no lowercasing
    assert R.rouge_l(["LoRA", "rank"], ["lora", "rank"]) == 0.5
    assert R.rouge_l(("a", "b"), "a b") == 1.0


# ---------------------------------------------------------------------------------------------------------------
# CJK: the rouge-score pitfall
# ---------------------------------------------------------------------------------------------------------------

class CharTokenizer:
    """One token per CJK Unified Ideograph: the usual fix passed to ``RougeScorer(tokenizer=...)``."""

    def tokenize(self, text):
        return [c for c in text if "\u4e00" <= c <= "\u9fff"]


def test_tokenize_cjk_one_token_per_character():
    assert R.tokenize("LoRA 微调 is 好") == ["lora", "微", "调", "is", "好"]
    assert R.tokenize("用LoRA微调7B模型。") == ["用", "lora", "微", "调", "7b", "模", "型"]
    assert R.tokenize("ひらがなとカタカナ・テスト") == list("ひらがなとカタカナテスト")  # ・ is punctuation
    assert R.tokenize("한국어 OK") == ["한", "국", "어", "ok"]
    assert R.tokenize("，。！？「」") == []


def test_rouge_score_default_drops_chinese(scorer):
    text = "请用三句话解释什么是监督微调"
    assert rs_tokenize.tokenize(text, None) == []
    assert scorer.score(text, text)["rougeL"].fmeasure == 0  # identical, yet "not similar at all"
    assert R.rouge_l(text, text) == 1.0
    pool = R.RougePool([text])
    assert not pool.is_novel(text)


def test_chinese_matches_rouge_score_with_char_tokenizer():
    char_scorer = rouge_scorer.RougeScorer(["rougeL"], tokenizer=CharTokenizer())
    rng = random.Random(1)
    chars = "我你他的是了在有和不这个用写一首关于大模型微调数据指令解释生成翻译总结中文英文"
    for _ in range(200):
        a = "".join(rng.choices(chars, k=rng.randint(1, 25)))
        b = "".join(rng.choices(chars, k=rng.randint(1, 25)))
        ref = char_scorer.score(a, b)["rougeL"]
        assert R.rouge_l_scores(a, b) == pytest.approx((ref.precision, ref.recall, ref.fmeasure), abs=1e-9)


# ---------------------------------------------------------------------------------------------------------------
# RougePool
# ---------------------------------------------------------------------------------------------------------------

def brute_force(query, pool_texts):
    """Every row's score, and the first row reaching the maximum (what max() over the pool returns)."""
    scores = [R.rouge_l(query, t) for t in pool_texts]
    best = max(scores, default=0.0)
    return scores, best, (scores.index(best) if best > 0 else -1)


@pytest.fixture(scope="module")
def random_pool():
    rng = random.Random(2)
    texts = [instruction(rng) for _ in range(500)]
    texts += [texts[7], perturb(rng, texts[7]), texts[100]]  # exact duplicates: ties go to the earlier row
    queries = [instruction(rng) for _ in range(25)] + [perturb(rng, rng.choice(texts)) for _ in range(25)]
    return texts, queries, R.RougePool(texts)


def test_max_similarity_equals_brute_force(random_pool):
    texts, queries, pool = random_pool
    assert len(pool) == len(texts) == 503
    for q in queries + [texts[7], texts[100]]:
        _, best, row = brute_force(q, texts)
        assert pool.max_similarity(q) == (best, row), q


def test_top_k_equals_brute_force_order(random_pool):
    texts, queries, pool = random_pool
    for q in queries[::5] + [texts[7]]:
        scores, _, _ = brute_force(q, texts)
        ranked = sorted(((s, -i) for i, s in enumerate(scores) if s > 0), reverse=True)  # ties: earlier first
        for k in (1, 5, 20):
            assert pool.top_k(q, k) == [(s, texts[-i]) for s, i in ranked[:k]]
    top = pool.top_k(texts[7], 3)
    assert top[0] == top[1] == (1.0, texts[7]) and top[2][0] < 1.0
    assert all(x[0] >= y[0] for x, y in zip(top, top[1:]))


def test_top_k_leaves_out_zero_scores():
    pool = R.RougePool(["write a poem", "write a story", "cook pasta"])
    assert pool.top_k("write a poem", k=10) == [(1.0, "write a poem"), (pytest.approx(2 / 3), "write a story")]
    assert pool.top_k("nothing shared", k=3) == []


def test_is_novel_threshold_is_inclusive():
    words = [f"w{i}" for i in range(40)]
    pool = R.RougePool([" ".join(words[:10])])
    seven_of_ten = " ".join(words[:7] + ["x", "y", "z"])  # LCS 7 of 10 and 10 tokens: F = 0.7 exactly
    assert R.rouge_l(seven_of_ten, pool.texts[0]) == 0.7
    assert not pool.is_novel(seven_of_ten)  # >= 0.7 is a near-duplicate
    assert pool.is_novel(seven_of_ten, threshold=0.71)
    assert pool.is_novel(" ".join(words[:6] + ["x", "y", "z", "v"]))  # F = 0.6
    # LCS 21 of 23 and 37 tokens is exactly 0.7, but rouge-score's 2PR/(P+R) rounds one ulp below it
    a, b = " ".join(words[:21] + ["x", "y"]), " ".join(words[:21] + [f"z{i}" for i in range(16)])
    assert R.rouge_l(a, b) < 0.7
    assert not R.RougePool([b]).is_novel(a)


def test_is_novel_matches_max_similarity(random_pool):
    texts, queries, pool = random_pool
    for q in queries:
        best, _ = pool.max_similarity(q)
        for threshold in (0.3, 0.5, 0.7, 1.0):
            assert pool.is_novel(q, threshold) == (best < threshold)


def test_pool_grows_and_empty_pool():
    pool = R.RougePool()
    assert len(pool) == 0
    assert pool.max_similarity("anything") == (0.0, -1)
    assert pool.top_k("anything") == []
    assert pool.is_novel("anything")
    assert pool.add("Write a poem about the sea.") == 0
    pool.extend(["Cook pasta.", "", "!!!"])  # texts without tokens are kept but never match
    assert len(pool) == 4
    assert pool.max_similarity("write a poem about the sea") == (1.0, 0)
    assert pool.max_similarity("") == (0.0, -1)
    assert pool.max_similarity("unseen words only") == (0.0, -1)
    assert not pool.is_novel("WRITE a poem about the sea!")


def test_self_instruct_loop_dedups_chinese():
    pool = R.RougePool(["写一首关于大海的诗"])
    for candidate in ["写一首关于大海的诗。", "写一首关于大海的短诗", "把这段话翻译成英文"]:
        if pool.is_novel(candidate):
            pool.add(candidate)
    assert pool.texts == ["写一首关于大海的诗", "把这段话翻译成英文"]


def test_pairwise_max_similarity():
    pool = ["write a poem", "cook pasta"]
    texts = ["write a poem", "write a story", "fly"]
    assert R.pairwise_max_similarity(texts, pool, progress=False) == [1.0, pytest.approx(2 / 3), 0.0]
    assert R.pairwise_max_similarity(texts, [], progress=False) == [0.0, 0.0, 0.0]


@pytest.mark.parametrize("call, error, match", [
    (lambda p: R.rouge_l(3, "a"), TypeError, "str or a sequence of str"),
    (lambda p: R.rouge_l("a", None), TypeError, "str or a sequence of str"),
    (lambda p: R.rouge_l(b"bytes", "a"), TypeError, "decode"),
    (lambda p: R.rouge_l({"a", "b"}, "a"), TypeError, "sequence"),
    (lambda p: R.rouge_l([1, 2], "a"), TypeError, "sequence of str"),
    (lambda p: R.tokenize(None), TypeError, "expects a str"),
    (lambda p: p.add(42), TypeError, "holds str"),
    (lambda p: p.extend("one string"), TypeError, "use add"),
    (lambda p: p.max_similarity(["a", "b"]), TypeError, "must be a str"),
    (lambda p: p.is_novel("a", threshold=0), ValueError, r"\(0, 1\]"),
    (lambda p: p.is_novel("a", threshold=1.5), ValueError, r"\(0, 1\]"),
    (lambda p: p.is_novel("a", threshold=-0.7), ValueError, "0.7"),
    (lambda p: p.is_novel("a", threshold=float("nan")), ValueError, r"\(0, 1\]"),
    (lambda p: p.is_novel("a", threshold="0.7"), TypeError, "number"),
    (lambda p: p.top_k("a", k=0), ValueError, "positive integer"),
    (lambda p: p.top_k("a", k=2.5), ValueError, "positive integer"),
    (lambda p: R.pairwise_max_similarity("abc", ["a"], progress=False), TypeError, "single str"),
])
def test_bad_inputs(call, error, match):
    with pytest.raises(error, match=match):
        call(R.RougePool(["a b"]))


# ---------------------------------------------------------------------------------------------------------------
# Speed
# ---------------------------------------------------------------------------------------------------------------

def test_pool_is_fast_and_beats_brute_force():
    # Measured on the 2-core dev box, under load: 0.025 s for the 50 queries (0.5 ms each), 1.0 s for brute
    # force over pre-tokenized rows (40x). The bounds leave about 10x headroom for a busy CI machine.
    rng = random.Random(3)
    texts = [instruction(rng) for _ in range(3000)]
    queries = [instruction(rng) for _ in range(25)] + [perturb(rng, rng.choice(texts)) for _ in range(25)]
    pool = R.RougePool(texts)
    start = time.perf_counter()
    fast = [pool.max_similarity(q) for q in queries]
    t_pool = time.perf_counter() - start
    assert t_pool < 0.25, f"50 queries against 3,000 texts took {t_pool:.3f} s"

    rows = [R.tokenize(t) for t in texts]  # brute force gets its tokens for free
    few = queries[:5] + queries[25:30]
    start = time.perf_counter()
    brute = [max(R.rouge_l(R.tokenize(q), row) for row in rows) for q in few]
    t_brute = (time.perf_counter() - start) / len(few) * len(queries)
    assert brute == [fast[queries.index(q)][0] for q in few]
    assert t_pool * 4 < t_brute, f"pool {t_pool:.3f} s vs brute force {t_brute:.3f} s (extrapolated)"
