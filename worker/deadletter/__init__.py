"""Dead letters: the record (`letter`), why it landed (`reasons`), where it is kept
(`store`), how it is replayed or purged (`replay`), and the worker's receivers that make
sure nothing a worker is given is dropped unrecorded (`receivers`).
"""
