"""The RFC 9162 Merkle tree: published vectors, every proof up to 130 leaves, mutations."""

from __future__ import annotations

import base64
import hashlib
import json
import random
from pathlib import Path
from typing import Any

import pytest

from eventstore.merkle import (
    EMPTY_ROOT,
    Frontier,
    NodeId,
    ProofError,
    ProofFailed,
    consistency_plan,
    inclusion_plan,
    leaf_hash,
    node_hash,
    range_nodes,
    root_of,
    verify_consistency,
    verify_inclusion,
)

VECTORS: dict[str, Any] = json.loads(
    (Path(__file__).parent / "data" / "rfc6962_vectors.json").read_text()
)
MAX_SIZE = 130


def _b64(value: str | None) -> bytes:
    return base64.b64decode(value) if value else b""


def _mth(leaves: list[bytes]) -> bytes:
    """Reference MTH, straight from RFC 9162 §2.1.1 (recursive, independent of the module)."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaf_hash(leaves[0])
    k = 1 << ((len(leaves) - 1).bit_length() - 1)
    return node_hash(_mth(leaves[:k]), _mth(leaves[k:]))


class Tree:
    """Leaves appended through the frontier; every complete node kept, every root recorded."""

    def __init__(self, n: int) -> None:
        self.inputs = [hashlib.sha256(str(i).encode()).digest() for i in range(n)]
        self.nodes: dict[NodeId, bytes] = {}
        self.roots = [EMPTY_ROOT]
        frontier = Frontier()
        for data in self.inputs:
            for level, index, h in frontier.append(leaf_hash(data)):
                self.nodes[(level, index)] = h
            self.roots.append(frontier.root())

    def inclusion(self, index: int, size: int) -> list[bytes]:
        plan = inclusion_plan(index, size)
        return plan.assemble({n: self.nodes[n] for n in plan.node_ids()})

    def consistency(self, first: int, second: int) -> list[bytes]:
        plan = consistency_plan(first, second)
        return plan.assemble({n: self.nodes[n] for n in plan.node_ids()})


@pytest.fixture(scope="module")
def tree() -> Tree:
    return Tree(MAX_SIZE)


def test_vectors_name_their_source() -> None:
    assert VECTORS["source"]["repository"] == "https://github.com/transparency-dev/merkle"
    assert len(VECTORS["source"]["commit"]) == 40


def test_published_roots_of_every_prefix_of_the_eight_leaves() -> None:
    leaves = [bytes.fromhex(x) for x in VECTORS["leaf_inputs_hex"]]
    roots = [bytes.fromhex(x) for x in VECTORS["roots_hex"]]
    assert len(roots) == 9
    assert roots[8].hex() == "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"
    frontier = Frontier()
    assert frontier.root() == roots[0] == EMPTY_ROOT
    for n, data in enumerate(leaves, start=1):
        frontier.append(leaf_hash(data))
        assert frontier.root() == roots[n] == root_of([leaf_hash(x) for x in leaves[:n]])


def test_published_proofs_are_generated_exactly() -> None:
    leaves = [bytes.fromhex(x) for x in VECTORS["leaf_inputs_hex"]]
    t = Tree(0)
    frontier = Frontier()
    for data in leaves:
        for level, index, h in frontier.append(leaf_hash(data)):
            t.nodes[(level, index)] = h
    happy = [p for p in VECTORS["inclusion_probes"] if not p["wantErr"] and p["treeSize"] <= 8]
    assert len(happy) >= 5
    for p in happy:
        expected = [_b64(h) for h in p["proof"] or []]
        assert t.inclusion(p["leafIdx"], p["treeSize"]) == expected, p["file"]
    happy_c = [
        p
        for p in VECTORS["consistency_probes"]
        if not p["wantErr"] and 0 < p["size1"] < p["size2"] <= 8
    ]
    assert len(happy_c) >= 4
    for p in happy_c:
        expected = [_b64(h) for h in p["proof"] or []]
        assert t.consistency(p["size1"], p["size2"]) == expected, p["file"]


@pytest.mark.parametrize("probe", VECTORS["inclusion_probes"], ids=lambda p: p["file"])
def test_published_inclusion_probe(probe: dict[str, Any]) -> None:
    args = (
        _b64(probe["leafHash"]),
        probe["leafIdx"],
        probe["treeSize"],
        [_b64(h) for h in probe["proof"] or []],
        _b64(probe["root"]),
    )
    if probe["wantErr"]:
        with pytest.raises(ProofFailed):
            verify_inclusion(*args)
    else:
        verify_inclusion(*args)


@pytest.mark.parametrize("probe", VECTORS["consistency_probes"], ids=lambda p: p["file"])
def test_published_consistency_probe(probe: dict[str, Any]) -> None:
    args = (
        probe["size1"],
        probe["size2"],
        _b64(probe["root1"]),
        _b64(probe["root2"]),
        [_b64(h) for h in probe["proof"] or []],
    )
    # Stricter than the source: a proof from size 0, or with roots that are not 32 bytes
    # (placeholders in probes the source lists as valid), is refused.
    malformed = any(len(h) != 32 for h in (args[2], args[3]))
    if probe["wantErr"] or probe["size1"] == 0 or malformed:
        with pytest.raises(ProofFailed):
            verify_consistency(*args)
    else:
        verify_consistency(*args)


def test_roots_match_the_rfc_definition_for_every_size(tree: Tree) -> None:
    for n in range(MAX_SIZE + 1):
        assert tree.roots[n] == _mth(tree.inputs[:n]), n


def test_every_leaf_of_every_size_has_a_verifying_inclusion_proof(tree: Tree) -> None:
    for size in range(1, MAX_SIZE + 1):
        for index in range(size):
            proof = tree.inclusion(index, size)
            assert len(proof) <= (size - 1).bit_length()
            verify_inclusion(leaf_hash(tree.inputs[index]), index, size, proof, tree.roots[size])


def test_every_consistency_pair_of_every_size_verifies(tree: Tree) -> None:
    for second in range(1, MAX_SIZE + 1):
        for first in range(1, second + 1):
            proof = tree.consistency(first, second)
            assert len(proof) <= (second - 1).bit_length() + 1
            assert (proof == []) == (first == second)
            verify_consistency(first, second, tree.roots[first], tree.roots[second], proof)


def test_an_inclusion_proof_does_not_verify_another_leaf_or_size(tree: Tree) -> None:
    proof = tree.inclusion(5, 13)
    with pytest.raises(ProofFailed):
        verify_inclusion(leaf_hash(tree.inputs[6]), 5, 13, proof, tree.roots[13])
    with pytest.raises(ProofFailed):
        verify_inclusion(leaf_hash(tree.inputs[5]), 5, 14, proof, tree.roots[14])
    with pytest.raises(ProofFailed):
        verify_inclusion(leaf_hash(tree.inputs[5]), 4, 13, proof, tree.roots[13])


def _flips(hashes: list[bytes]) -> list[list[bytes]]:
    out = []
    for i, h in enumerate(hashes):
        for bit in range(len(h) * 8):
            changed = bytearray(h)
            changed[bit // 8] ^= 1 << (bit % 8)
            out.append([*hashes[:i], bytes(changed), *hashes[i + 1 :]])
    return out


def _refused(check: Any, *args: Any) -> bool:
    try:
        check(*args)
    except ProofFailed:
        return True
    return False


def test_every_single_bit_mutation_is_rejected_up_to_16_leaves(tree: Tree) -> None:
    rejected = accepted = 0
    for size in range(1, 17):
        root = tree.roots[size]
        for index in range(size):
            leaf = leaf_hash(tree.inputs[index])
            proof = tree.inclusion(index, size)
            for [mutated_leaf, *mutated_proof] in _flips([leaf, *proof]):
                if _refused(verify_inclusion, mutated_leaf, index, size, mutated_proof, root):
                    rejected += 1
                else:
                    accepted += 1
        for first in range(1, size):
            proof = tree.consistency(first, size)
            for mutated in _flips(proof):
                if _refused(verify_consistency, first, size, tree.roots[first], root, mutated):
                    rejected += 1
                else:
                    accepted += 1
    assert accepted == 0
    assert rejected > 100_000


def test_sampled_single_bit_mutations_are_rejected_above_16_leaves(tree: Tree) -> None:
    rng = random.Random(9162)
    for _ in range(3000):
        size = rng.randint(17, MAX_SIZE)
        if rng.random() < 0.5:
            index = rng.randrange(size)
            proof = tree.inclusion(index, size)
            i = rng.randrange(len(proof))
            bit = rng.randrange(256)
            proof[i] = bytes(
                b ^ (1 << (bit % 8)) if j == bit // 8 else b for j, b in enumerate(proof[i])
            )
            with pytest.raises(ProofFailed):
                verify_inclusion(
                    leaf_hash(tree.inputs[index]), index, size, proof, tree.roots[size]
                )
        else:
            first = rng.randrange(1, size)
            proof = tree.consistency(first, size)
            i = rng.randrange(len(proof))
            bit = rng.randrange(256)
            proof[i] = bytes(
                b ^ (1 << (bit % 8)) if j == bit // 8 else b for j, b in enumerate(proof[i])
            )
            with pytest.raises(ProofFailed):
                verify_consistency(first, size, tree.roots[first], tree.roots[size], proof)


def test_truncated_extended_or_reordered_proofs_are_rejected(tree: Tree) -> None:
    proof = tree.inclusion(3, 11)
    leaf, root = leaf_hash(tree.inputs[3]), tree.roots[11]
    for bad in (proof[:-1], [*proof, proof[0]], list(reversed(proof)), [b"\x00" * 32, *proof]):
        with pytest.raises(ProofFailed):
            verify_inclusion(leaf, 3, 11, bad, root)
    cproof = tree.consistency(6, 11)
    for bad in (cproof[:-1], [*cproof, cproof[0]], list(reversed(cproof))):
        with pytest.raises(ProofFailed):
            verify_consistency(6, 11, tree.roots[6], tree.roots[11], bad)


def test_consistency_from_size_zero_is_refused(tree: Tree) -> None:
    with pytest.raises(ProofError):
        consistency_plan(0, 5)
    with pytest.raises(ProofFailed):
        verify_consistency(0, 5, EMPTY_ROOT, tree.roots[5], [])
    with pytest.raises(ProofFailed):
        verify_consistency(0, 0, EMPTY_ROOT, EMPTY_ROOT, [])


def test_impossible_parameters_are_refused() -> None:
    for index, size in ((0, 0), (5, 5), (-1, 3)):
        with pytest.raises(ProofError):
            inclusion_plan(index, size)
    with pytest.raises(ProofError):
        consistency_plan(6, 5)


def test_hashes_that_are_not_32_bytes_are_refused(tree: Tree) -> None:
    proof = tree.inclusion(2, 7)
    leaf, root = leaf_hash(tree.inputs[2]), tree.roots[7]
    with pytest.raises(ProofFailed, match="not 32"):
        verify_inclusion(leaf, 2, 7, [*proof[:-1], proof[-1] + b"\x00"], root)
    with pytest.raises(ProofFailed, match="not 32"):
        verify_inclusion(leaf[:31], 2, 7, proof, root)
    cproof = tree.consistency(3, 7)
    with pytest.raises(ProofFailed, match="not 32"):
        verify_consistency(3, 7, tree.roots[3], tree.roots[7], [cproof[0][:16], *cproof[1:]])
    with pytest.raises(ValueError):
        Frontier().append(b"short")


def test_frontier_is_rebuilt_from_stored_nodes(tree: Tree) -> None:
    for size in (0, 1, 7, 64, 100, MAX_SIZE):
        frontier = Frontier.from_store(size, tree.nodes)
        assert frontier.root() == tree.roots[size]
        if size < MAX_SIZE:
            frontier.append(leaf_hash(tree.inputs[size]))
            assert frontier.root() == tree.roots[size + 1]


def test_range_decomposition_is_complete_and_aligned() -> None:
    for start in range(0, 40):
        for end in range(start, 70):
            covered: list[int] = []
            for level, index in range_nodes(start, end):
                covered.extend(range(index << level, (index + 1) << level))
            assert covered == list(range(start, end))


def _refusal(check: Any, *args: Any) -> str:
    with pytest.raises(ProofFailed) as refused:
        check(*args)
    return str(refused.value)


def test_each_refused_proof_names_the_check_it_failed(tree: Tree) -> None:
    leaf, root = leaf_hash(tree.inputs[3]), tree.roots[11]
    proof = tree.inclusion(3, 11)
    assert _refusal(verify_inclusion, leaf, 11, 11, proof, root) == (
        "leaf index 11 is not in a tree of size 11"
    )
    assert _refusal(verify_inclusion, leaf, -1, 11, proof, root) == (
        "leaf index -1 is not in a tree of size 11"
    )
    assert _refusal(verify_inclusion, leaf, 3, 11, [*proof, proof[0]], root) == (
        "the inclusion proof is longer than the tree is deep"
    )
    assert _refusal(verify_inclusion, leaf, 3, 11, proof[:-1], root) == (
        "the inclusion proof is shorter than the tree is deep"
    )
    assert _refusal(verify_inclusion, leaf, 3, 11, proof, tree.roots[10]) == (
        "the inclusion proof leads to another root"
    )
    assert _refusal(verify_inclusion, leaf[:31], 3, 11, proof, root) == (
        "a proof hash is 31 bytes, not 32"
    )
    # one leaf: an empty proof, and the leaf is the root
    verify_inclusion(leaf_hash(tree.inputs[0]), 0, 1, [], tree.roots[1])
    first, second = tree.roots[6], tree.roots[11]
    cproof = tree.consistency(6, 11)
    assert _refusal(verify_consistency, 0, 11, EMPTY_ROOT, second, cproof) == (
        "a consistency proof from an empty tree proves nothing"
    )
    assert _refusal(verify_consistency, 12, 11, first, second, cproof) == (
        "size 12 is beyond size 11"
    )
    assert _refusal(verify_consistency, 11, 11, second, second, cproof) == (
        "a proof between equal sizes must be empty"
    )
    assert _refusal(verify_consistency, 11, 11, second, first, []) == (
        "two different roots for the same tree size"
    )
    verify_consistency(11, 11, second, second, [])
    assert _refusal(verify_consistency, 6, 11, first, second, []) == (
        "the consistency proof is empty"
    )
    assert _refusal(verify_consistency, 6, 11, first, second, [*cproof, cproof[0]]) == (
        "the consistency proof is longer than the tree is deep"
    )
    assert _refusal(verify_consistency, 6, 11, first, second, cproof[:-1]) == (
        "the consistency proof is shorter than the tree is deep"
    )
    assert _refusal(verify_consistency, 6, 11, tree.roots[5], second, cproof) == (
        "the consistency proof does not lead to the first root"
    )
    assert _refusal(verify_consistency, 6, 11, first, tree.roots[12], cproof) == (
        "the consistency proof does not lead to the second root"
    )
    # a power-of-two first size: its root is the proof's implicit first hash
    verify_consistency(8, 11, tree.roots[8], second, tree.consistency(8, 11))
    verify_consistency(1, 2, tree.roots[1], tree.roots[2], tree.consistency(1, 2))


def test_impossible_proof_parameters_and_frontiers_say_why() -> None:
    for index, size in ((0, 0), (5, 5), (-1, 3)):
        with pytest.raises(ProofError) as refused:
            inclusion_plan(index, size)
        assert str(refused.value) == f"leaf index {index} is not in a tree of size {size}"
    with pytest.raises(ProofError) as refused:
        consistency_plan(6, 5)
    assert str(refused.value) == "size 6 is beyond size 5"
    with pytest.raises(ProofError) as refused:
        consistency_plan(0, 5)
    assert str(refused.value) == "a consistency proof from an empty tree proves nothing"
    assert consistency_plan(5, 5).ranges == [] and consistency_plan(5, 5).node_ids() == set()
    with pytest.raises(ValueError, match=r"^a leaf hash is 32 bytes$"):
        Frontier().append(bytes(33))
    with pytest.raises(ValueError, match="do not match size 3"):
        Frontier([(0, bytes(32))], 3)
    assert Frontier.ids(0) == [] and Frontier.ids(6) == [(2, 0), (1, 2)]
    frontier = Frontier()
    assert frontier.append(bytes(32)) == [(0, 0, bytes(32))]
    created = frontier.append(bytes([1]) * 32)
    assert created == [(0, 1, bytes([1]) * 32), (1, 0, node_hash(bytes(32), bytes([1]) * 32))]
    assert frontier.size == 2


def test_extending_in_batches_creates_the_same_nodes_and_roots_as_one_leaf_at_a_time(
    tree: Tree,
) -> None:
    leaves = [leaf_hash(data) for data in tree.inputs]
    rng = random.Random(6962)
    for _ in range(20):
        frontier, nodes, at = Frontier(), {}, 0
        while at < len(leaves):
            step = rng.randint(1, 40)
            for level, index, h in frontier.extend(leaves[at : at + step]):
                assert (level, index) not in nodes  # every complete node is created once
                nodes[(level, index)] = h
            at = min(len(leaves), at + step)
            assert frontier.size == at
            assert frontier.root() == tree.roots[at]
        assert nodes == tree.nodes
