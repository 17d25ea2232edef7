"""RFC 9162 Merkle tree over the log (pure): hashing, compact frontier, proofs.

- Leaf `i` is the event with `seq = i + 1`; its leaf input is the 32 raw bytes
  of the event's `hash`. `leaf_hash = SHA-256(0x00 || input)`, inner node
  `SHA-256(0x01 || left || right)`; the empty tree's root is `SHA-256("")`.
- A node is addressed by `(level, index)`: the complete subtree over leaves
  `[index * 2**level, (index + 1) * 2**level)`. Only complete subtrees are
  ever stored; they never change once the log has grown past them.
- Every hash an RFC 9162 proof (§2.1.3, §2.1.4) needs is the root of a range
  `[a, b)` that is either complete or ends at the tree size; such a range is
  the left-to-right fold of its complete-subtree decomposition. So a proof is
  planned as a list of node ids, fetched from the store in one query, then
  folded (`ProofPlan.assemble`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence

import msgspec

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()

NodeId = tuple[int, int]
"""(level, index) of a complete subtree."""


class ProofError(ValueError):
    """A proof was asked for with impossible parameters (index or sizes out of range).

    `argument` names the one at fault: `seq` (the leaf), `first` (a consistency
    proof's old size) or `size` (the tree asked for); the API turns it into its
    parameter's name.
    """

    def __init__(self, message: str, *, argument: str) -> None:
        super().__init__(message)
        self.argument = argument


class ProofFailed(ValueError):
    """A proof does not verify; the message says which check failed."""


def count_events(n: int) -> str:
    """A tree's size in words: `1 event`, `5 events`."""
    return f"{n} event" if n == 1 else f"{n} events"


def leaf_hash(data: bytes) -> bytes:
    """SHA-256(0x00 || data)."""
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """SHA-256(0x01 || left || right)."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def _largest_power_of_two_below(n: int) -> int:
    """The largest power of two strictly smaller than n (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def root_of(leaf_hashes: Sequence[bytes]) -> bytes:
    """MTH of the given leaf hashes, computed with a frontier (O(n) time, O(log n) space)."""
    frontier = Frontier()
    for h in leaf_hashes:
        frontier.append(h)
    return frontier.root()


def range_nodes(start: int, end: int) -> list[NodeId]:
    """The complete subtrees covering leaves [start, end), left to right (largest first)."""
    nodes: list[NodeId] = []
    while start < end:
        # The largest aligned subtree that starts at `start` and fits before `end`.
        level = (start & -start).bit_length() - 1 if start else (end - start).bit_length() - 1
        while (1 << level) > end - start:
            level -= 1
        nodes.append((level, start >> level))
        start += 1 << level
    return nodes


def fold_range(hashes: Sequence[bytes]) -> bytes:
    """The MTH of a range from its complete-subtree roots (left to right, decreasing sizes)."""
    acc = hashes[-1]
    for h in reversed(hashes[:-1]):
        acc = node_hash(h, acc)
    return acc


class Frontier:
    """Compact range [0, size): the roots of the complete subtrees of the size's set bits.

    The roots are kept largest first; the level of each is implied by `size` (its set
    bits, high to low), so appending a leaf merges exactly as many roots as `size`
    has trailing one bits.
    """

    def __init__(self, nodes: Sequence[tuple[int, bytes]] = (), size: int = 0) -> None:
        expected = [level for level, _ in range_nodes(0, size)]
        if [level for level, _ in nodes] != expected:
            raise ValueError(f"frontier levels {list(nodes)!r} do not match size {size}")
        self._roots: list[bytes] = [h for _, h in nodes]
        self.size = size

    @classmethod
    def from_store(cls, size: int, nodes: Mapping[NodeId, bytes]) -> Frontier:
        """Rebuild the frontier of `size` from stored nodes (KeyError if one is missing)."""
        return cls([(level, nodes[(level, index)]) for level, index in range_nodes(0, size)], size)

    @staticmethod
    def ids(size: int) -> list[NodeId]:
        """The node ids the frontier of `size` consists of."""
        return range_nodes(0, size)

    def append(self, leaf: bytes) -> list[tuple[int, int, bytes]]:
        """Add a leaf hash; returns the complete nodes it creates: (level, index, hash), leaf first."""
        return self.extend([leaf])

    def extend(self, leaves: Iterable[bytes]) -> list[tuple[int, int, bytes]]:
        """Add leaf hashes in order; returns every complete node they create, leaves first each.

        Amortised O(1) per leaf: a merge happens once per completed subtree. This is
        the capture path's per-event cost, so it stays one loop with local names.
        """
        roots, size = self._roots, self.size
        pop, push = roots.pop, roots.append
        sha256, one = hashlib.sha256, b"\x01"
        created: list[tuple[int, int, bytes]] = []
        add = created.append
        for leaf in leaves:
            if len(leaf) != HASH_SIZE:
                self.size = size
                raise ValueError("a leaf hash is 32 bytes")
            add((0, size, leaf))
            h, level, index, carry = leaf, 0, size, size
            while carry & 1:  # each trailing one bit of the size: a root to merge with
                h = sha256(one + pop() + h).digest()
                level += 1
                index >>= 1
                carry >>= 1
                add((level, index, h))
            push(h)
            size += 1
        self.size = size
        return created

    def root(self) -> bytes:
        """The root hash of the tree of `size` leaves."""
        if not self._roots:
            return EMPTY_ROOT
        return fold_range(self._roots)


class ProofPlan(msgspec.Struct, frozen=True):
    """The ranges whose roots form a proof, in proof order."""

    ranges: list[tuple[int, int]]

    def node_ids(self) -> set[NodeId]:
        """Every stored node the proof needs (fetch them in one query)."""
        return {node for a, b in self.ranges for node in range_nodes(a, b)}

    def assemble(self, nodes: Mapping[NodeId, bytes]) -> list[bytes]:
        """The proof hashes from the fetched nodes (KeyError if one is missing)."""
        return [fold_range([nodes[n] for n in range_nodes(a, b)]) for a, b in self.ranges]


def inclusion_plan(index: int, size: int) -> ProofPlan:
    """RFC 9162 §2.1.3.1 PATH(index, D[0:size]) as ranges, bottom up."""
    if not 0 <= index < size:
        raise ProofError(f"leaf index {index} is not in a tree of size {size}", argument="seq")
    ranges: list[tuple[int, int]] = []

    def path(m: int, lo: int, n: int) -> None:
        if n == 1:
            return
        k = _largest_power_of_two_below(n)
        if m < k:
            path(m, lo, k)
            ranges.append((lo + k, lo + n))
        else:
            path(m - k, lo + k, n - k)
            ranges.append((lo, lo + k))

    path(index, 0, size)
    return ProofPlan(ranges)


def consistency_plan(first: int, second: int) -> ProofPlan:
    """RFC 9162 §2.1.4.1 PROOF(first, D[0:second]) as ranges; refused from size 0."""
    if first < 1:
        raise ProofError("a consistency proof from an empty tree proves nothing", argument="first")
    if first > second:
        raise ProofError(f"size {first} is beyond size {second}", argument="first")
    ranges: list[tuple[int, int]] = []

    def subproof(m: int, lo: int, n: int, complete: bool) -> None:
        if m == n:
            if not complete:
                ranges.append((lo, lo + m))
            return
        k = _largest_power_of_two_below(n)
        if m <= k:
            subproof(m, lo, k, complete)
            ranges.append((lo + k, lo + n))
        else:
            subproof(m - k, lo + k, n - k, False)
            ranges.append((lo, lo + k))

    subproof(first, 0, second, True)
    return ProofPlan(ranges)


def _check_sizes(hashes: Sequence[bytes]) -> None:
    for h in hashes:
        if len(h) != HASH_SIZE:
            raise ProofFailed(f"a proof hash is {len(h)} bytes, not {HASH_SIZE}")


def verify_inclusion(
    leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """RFC 9162 §2.1.3.2; raises ProofFailed unless `leaf` is leaf `index` of the tree `root`."""
    _check_sizes([leaf, root, *proof])
    if not 0 <= index < size:
        raise ProofFailed(f"leaf index {index} is not in a tree of size {size}")
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            raise ProofFailed("the inclusion proof is longer than the tree is deep")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofFailed("the inclusion proof is shorter than the tree is deep")
    if r != root:
        raise ProofFailed("the inclusion proof leads to another root")


def verify_consistency(
    first: int, second: int, first_root: bytes, second_root: bytes, proof: Sequence[bytes]
) -> None:
    """RFC 9162 §2.1.4.2; raises ProofFailed unless tree `second` extends tree `first`."""
    _check_sizes([first_root, second_root, *proof])
    if first < 1:
        raise ProofFailed("a consistency proof from an empty tree proves nothing")
    if first > second:
        raise ProofFailed(f"size {first} is beyond size {second}")
    if first == second:
        if proof:
            raise ProofFailed("a proof between equal sizes must be empty")
        if first_root != second_root:
            raise ProofFailed("two different roots for the same tree size")
        return
    if not proof:
        raise ProofFailed("the consistency proof is empty")
    path = list(proof)
    if first & (first - 1) == 0:
        path.insert(0, first_root)
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofFailed("the consistency proof is longer than the tree is deep")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofFailed("the consistency proof is shorter than the tree is deep")
    if fr != first_root:
        raise ProofFailed("the consistency proof does not lead to the first root")
    if sr != second_root:
        raise ProofFailed("the consistency proof does not lead to the second root")
