"""Bounds on a GraphQL document before it runs: size in tokens, selection depth, and complexity.

cc-backend refuses operations over a fixed complexity of 5,000, counting every field selection as one
(gqlgen's default). Depth has no bound there; here a document nested deeper than any real one is
refused too, so that a small hostile document cannot make the server walk an exponential tree.
"""

from __future__ import annotations

from dataclasses import dataclass

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
)

#: cc-backend's FixedComplexityLimit.
MAX_COMPLEXITY = 5000
#: Deeper than cc-backend's UI ever nests (jobs → items → tags → name is 4; clusters' topology is 5).
MAX_DEPTH = 15
#: Tokens the parser reads at most: a document of this many tokens is far larger than any real one.
MAX_TOKENS = 20_000


@dataclass(frozen=True)
class Cost:
    depth: int
    complexity: int


class _Walker:
    def __init__(self, fragments: dict[str, FragmentDefinitionNode]) -> None:
        self.fragments = fragments
        self.complexity = 0

    def walk(self, selections: SelectionSetNode | None, depth: int, seen: frozenset[str]) -> int:
        """The deepest field level below `selections`; counts every field into `complexity`."""
        if selections is None:
            return depth
        deepest = depth
        for node in selections.selections:
            if self.complexity > MAX_COMPLEXITY:
                return deepest
            if isinstance(node, FieldNode):
                self.complexity += 1
                deepest = max(deepest, self.walk(node.selection_set, depth + 1, seen))
            elif isinstance(node, InlineFragmentNode):
                deepest = max(deepest, self.walk(node.selection_set, depth, seen))
            elif isinstance(node, FragmentSpreadNode):
                name = node.name.value
                fragment = self.fragments.get(name)
                if fragment is not None and name not in seen:  # cycles are refused by validation anyway
                    deepest = max(deepest, self.walk(fragment.selection_set, depth, seen | {name}))
            if deepest > MAX_DEPTH:
                return deepest
        return deepest


def cost(document: DocumentNode, operation: OperationDefinitionNode) -> Cost:
    """Depth and complexity of `operation`, fragments expanded (stops counting past either limit)."""
    fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
    walker = _Walker(fragments)
    depth = walker.walk(operation.selection_set, 0, frozenset())
    return Cost(depth, walker.complexity)


def over_limits(document: DocumentNode, operation: OperationDefinitionNode) -> str | None:
    """Why the operation is refused, or None."""
    found = cost(document, operation)
    if found.complexity > MAX_COMPLEXITY:
        return f"operation has complexity over the limit of {MAX_COMPLEXITY}"
    if found.depth > MAX_DEPTH:
        return f"operation nests fields deeper than the limit of {MAX_DEPTH}"
    return None
