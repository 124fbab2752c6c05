"""BRIDGE's pure selection core (arXiv 2512.20403): TA difficulty scores, problem embeddings, the selection
strategies, the teacher-budget arithmetic and the selection plot.

BRIDGE's paper, as far as we could read it (abstract level), leaves unknown which entropy makes a problem
"difficult", which embedding and algorithm give "semantic diversity", and how the two are balanced. What is
here are our documented choices, each in its module's docstring (notes:
the project's method notes, methods-bridge-thinkdial.md §1). Framework-free: numpy and matplotlib only.
"""

from bard_core.bridge.embedding import EMBEDDERS, EmbeddingKind, embed
from bard_core.bridge.plots import selection_plot
from bard_core.bridge.scores import ProblemScore, answer_entropy_bits, difficulty_scores
from bard_core.bridge.selection import Selection, SelectorKind, kmeans, select, teacher_budget_count

__all__ = [
    "EMBEDDERS",
    "EmbeddingKind",
    "ProblemScore",
    "Selection",
    "SelectorKind",
    "answer_entropy_bits",
    "difficulty_scores",
    "embed",
    "kmeans",
    "select",
    "selection_plot",
    "teacher_budget_count",
]
