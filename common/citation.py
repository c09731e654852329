"""How to cite the study: the one citation used by the README, every card and the Space."""

from __future__ import annotations

PAPER = {
    "title": (
        "Massive Supervised Fine-tuning Experiments Reveal How Data, Layer, and Training Factors "
        "Shape LLM Alignment Quality"
    ),
    "authors": "Yuto Harada, Yusuke Yamauchi, Yusuke Oda, Yohei Oseki, Yusuke Miyao, Yu Takagi",
    "arxiv": "2506.14681",
    "venue": "EMNLP 2025",
}

BIBTEX = """@inproceedings{harada2025massive,
  title     = {Massive Supervised Fine-tuning Experiments Reveal How Data, Layer, and Training Factors Shape {LLM} Alignment Quality},
  author    = {Harada, Yuto and Yamauchi, Yusuke and Oda, Yusuke and Oseki, Yohei and Miyao, Yusuke and Takagi, Yu},
  booktitle = {Proceedings of the 2025 Conference on Empirical Methods in Natural Language Processing (EMNLP)},
  year      = {2025},
  eprint    = {2506.14681},
  archivePrefix = {arXiv}
}"""

# One line for prose: "<title>. <authors>. <venue>. arXiv:<id>."
CITATION_LINE = f"{PAPER['title']}. {PAPER['authors']}. {PAPER['venue']}. arXiv:{PAPER['arxiv']}."
