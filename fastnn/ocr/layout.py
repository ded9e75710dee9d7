"""Stage 2: character boxes to lines and words, in reading order, from the boxes' own sizes and gaps."""

from __future__ import annotations

import numpy as np


def group_lines(boxes):
    """Order character boxes into lines and words, in reading order.

    Lines are built by linking each box to its nearest right neighbour that
    overlaps it vertically by at least half the smaller height (mutual best
    matches only, so a tall character cannot join two lines); chains that
    continue each other (collinear, not overlapping in x) are then joined,
    which follows slightly slanted lines and lines with gaps. Lines are
    sorted top to bottom, boxes left to right.

    Words: a gap between neighbours is measured in units of the line's
    median character height. The gaps of the whole page are split into
    letter gaps and word gaps where they form two well separated groups;
    a page whose gaps are all alike is read as spaced-out single characters
    if they are wide (over 0.7 heights), else as words without breaks (see
    ``_word_gap_threshold``). Nothing is in pixels, so any image scale
    works.

    Parameters
    ----------
    boxes : (n, 4) array_like of int
        ``[y1, x1, y2, x2]`` per character.

    Returns
    -------
    lines : list of list of list of int
        ``lines[i][j]`` is the list of box indices (into ``boxes``) of word
        ``j`` of line ``i``, left to right.

    Examples
    --------
    >>> boxes = [[0, 0, 10, 8], [0, 10, 10, 18], [0, 40, 10, 48], [30, 0, 40, 8]]
    >>> group_lines(boxes)
    [[[0, 1], [2]], [[3]]]
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    n = len(boxes)
    if n == 0:
        return []
    chains = _chain_lines(boxes)
    chains = _join_chains(boxes, chains)
    # reading order: top to bottom by the chain's mean centre
    cy = (boxes[:, 0] + boxes[:, 2]) / 2
    chains.sort(key=lambda c: float(np.mean(cy[c])))
    return _split_words(boxes, chains)


def drop_dot_lines(boxes, lines, *, max_height=0.6, max_gap=0.5):
    """Remove the lines that are only the dot of an i or j (or a speck) just above or below a character.

    A line of one box counts as a dot when the box is under ``max_height`` of the page's median character
    height, and a character of another line lies within ``max_gap`` median heights below or above it and
    overlaps it horizontally (within a quarter of a median width). Such a box is not a character: read alone it
    would be a line of its own ("I"). Returns ``lines`` without those lines (the boxes stay unread).

    Parameters
    ----------
    boxes : (n, 4) array_like of int
        ``[y1, x1, y2, x2]`` per character.
    lines : list of list of list of int
        As :func:`group_lines` returns them.

    Returns
    -------
    lines : list of list of list of int
        The same lines, less the dots.

    Examples
    --------
    >>> boxes = [[0, 10, 6, 14], [10, 8, 40, 14], [10, 30, 40, 50]]
    >>> drop_dot_lines(boxes, [[[0]], [[1, 2]]])
    [[[1, 2]]]
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    if len(lines) < 2:
        return lines
    h = boxes[:, 2] - boxes[:, 0]
    med_h = float(np.median(h))
    med_w = float(np.median(boxes[:, 3] - boxes[:, 1]))
    kept = []
    for k, line in enumerate(lines):
        if len(line) == 1 and len(line[0]) == 1 and h[line[0][0]] < max_height * med_h:
            y1, x1, y2, x2 = boxes[line[0][0]]
            others = np.array([i for m, other in enumerate(lines) if m != k for word in other for i in word])
            gap = np.maximum(boxes[others, 0] - y2, y1 - boxes[others, 2])   # vertical; < 0: they overlap
            slack = 0.25 * med_w
            overlap = np.minimum(boxes[others, 3], x2 + slack) - np.maximum(boxes[others, 1], x1 - slack)
            near = gap <= max_gap * med_h
            if np.any(near & (overlap > 0)):
                continue
        kept.append(line)
    return kept


def _chain_lines(boxes):
    n = len(boxes)
    y1, x1, y2, x2 = boxes.T
    h = np.maximum(y2 - y1, 1.0)
    w = np.maximum(x2 - x1, 1.0)
    cx = (x1 + x2) / 2
    cy = (y1 + y2) / 2
    ov = np.minimum(y2[:, None], y2[None, :]) - np.maximum(y1[:, None], y1[None, :])
    minh = np.minimum(h[:, None], h[None, :])
    maxh = np.maximum(h[:, None], h[None, :])
    right = cx[None, :] > cx[:, None] + 0.25 * np.minimum(w[:, None], w[None, :])
    gap = x1[None, :] - x2[:, None]
    # cost: horizontal gap in units of height, plus vertical misalignment
    cost = np.maximum(gap, 0) / maxh + 2.0 * np.abs(cy[None, :] - cy[:, None]) / maxh
    ok = right & (ov >= 0.5 * minh) & (gap < 6.0 * maxh)
    cost = np.where(ok, cost, np.inf)
    succ = np.argmin(cost, axis=1)
    succ_ok = np.isfinite(cost[np.arange(n), succ])
    pred = np.argmin(cost, axis=0)
    nxt = -np.ones(n, np.int64)
    has_pred = np.zeros(n, bool)
    for i in range(n):
        j = succ[i]
        if succ_ok[i] and pred[j] == i:
            nxt[i] = j
            has_pred[j] = True
    chains = []
    for i in range(n):
        if has_pred[i]:
            continue
        c = [i]
        while nxt[c[-1]] >= 0:
            c.append(int(nxt[c[-1]]))
        chains.append(c)
    return chains


def _line_fit(boxes, chain):
    cy = (boxes[chain, 0] + boxes[chain, 2]) / 2
    cx = (boxes[chain, 1] + boxes[chain, 3]) / 2
    if len(chain) >= 3 and np.ptp(cx) > 0:
        slope, icept = np.polyfit(cx, cy, 1)
        slope = float(np.clip(slope, -0.3, 0.3))
        icept = float(np.median(cy - slope * cx))
    else:
        slope, icept = 0.0, float(np.mean(cy))
    return slope, icept


def _join_chains(boxes, chains):
    """Join chains that lie on one text line (collinear, disjoint in x)."""
    h = boxes[:, 2] - boxes[:, 0]
    changed = True
    while changed and len(chains) > 1:
        changed = False
        chains.sort(key=lambda c: -len(c))
        for a in range(len(chains)):
            ca = chains[a]
            slope, icept = _line_fit(boxes, ca)
            ha = float(np.median(h[ca]))
            xa1, xa2 = boxes[ca, 1].min(), boxes[ca, 3].max()
            best, best_d = None, np.inf
            for b in range(len(chains)):
                if b == a:
                    continue
                cb = chains[b]
                xb1, xb2 = boxes[cb, 1].min(), boxes[cb, 3].max()
                overlap = min(xa2, xb2) - max(xa1, xb1)
                if overlap > 0.2 * ha:
                    continue
                cy = (boxes[cb, 0] + boxes[cb, 2]) / 2
                cx = (boxes[cb, 1] + boxes[cb, 3]) / 2
                d = float(np.median(np.abs(cy - (slope * cx + icept))))
                hb = float(np.median(h[cb]))
                if d < 0.35 * max(ha, hb) and d < best_d:
                    best, best_d = b, d
            if best is not None:
                merged = ca + chains[best]
                merged.sort(key=lambda i: boxes[i, 1] + boxes[i, 3])
                chains = [c for k, c in enumerate(chains) if k not in (a, best)] + [merged]
                changed = True
                break
    return [sorted(c, key=lambda i: boxes[i, 1] + boxes[i, 3]) for c in chains]


def _split_words(boxes, chains):
    h = boxes[:, 2] - boxes[:, 0]
    rel_gaps = []
    for c in chains:
        hl = max(float(np.median(h[c])), 1.0)
        g = (boxes[c[1:], 1] - boxes[c[:-1], 3]) / hl
        rel_gaps.append(g)
    all_g = np.concatenate(rel_gaps) if rel_gaps else np.zeros(0)
    thresh = _word_gap_threshold(all_g)
    lines = []
    for c, g in zip(chains, rel_gaps):
        words = [[int(c[0])]]
        for k in range(1, len(c)):
            if g[k - 1] > thresh:
                words.append([])
            words[-1].append(int(c[k]))
        lines.append(words)
    return lines


def _word_gap_threshold(gaps):
    """Relative gap (units of line height) above which a gap splits words.

    Gaps of a page usually form two groups, letter gaps and word gaps. They
    are split by Otsu's criterion; the groups count as distinct when they
    are well separated (between-group distance over 4 within-group standard
    deviations) and their means differ by more than a factor 2.2, and the
    threshold is then put in the widest (log-scale) empty interval between
    the group means. A page with one kind of gap only is read as spaced-out
    single characters when its median gap is over 0.7 character heights,
    else as letters with no word breaks unless a gap exceeds one height
    and twice the median.
    """
    gaps = np.sort(gaps[np.isfinite(gaps)])
    if gaps.size == 0:
        return 1.0
    if gaps.size >= 3:
        best_t, best_score = None, 0.0
        for t in (gaps[:-1] + gaps[1:]) / 2:
            a, b = gaps[gaps <= t], gaps[gaps > t]
            if len(a) == 0 or len(b) == 0:
                continue
            score = len(a) * len(b) * (b.mean() - a.mean()) ** 2
            if score > best_score:
                best_score, best_t = score, t
        if best_t is not None:
            a, b = gaps[gaps <= best_t], gaps[gaps > best_t]
            spread = np.sqrt((a.var() * len(a) + b.var() * len(b)) / len(gaps)) + 1e-3
            ma, mb = a.mean(), b.mean()
            if (mb - ma) / spread > 4.0 and mb > 2.2 * max(ma, 0.05):
                inside = gaps[(gaps >= ma) & (gaps <= mb)]
                lg = np.log(np.clip(inside, 0.02, None))
                k = int(np.argmax(np.diff(lg)))
                return float(np.exp(0.5 * (lg[k] + lg[k + 1])))
    med = float(np.median(gaps))
    if med > 0.7:
        return 0.3
    return max(1.0, 2.0 * med)
