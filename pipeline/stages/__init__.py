"""The stages of a survey run, each a library function over Arrow tables: discover, decode,
embed, classify, bursts, then localize and identify on the leopard frames. Stages know no runs.
"""
