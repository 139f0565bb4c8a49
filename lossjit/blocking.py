"""How a kernel's work is cut into blocks: the one rule the kernels, the layouts and the
runners share, so that any piece of a call holds whole blocks of the whole call.

A kernel's ``x`` has its loss terms along axis 0 ("rows"). A block is a whole number of rows
holding about ``BLOCK`` numbers; blocks start at multiples of :func:`block_rows`, counted from
the first row. A piece of a call that starts at such a multiple holds exactly the blocks the
whole call has there, so its block sums are the same numbers, and an exact sum of all block
sums is the same whatever the pieces were. Plain Python: the kernels compile the same code.

>>> block_rows(10), block_rows(1), block_rows(100_000)
(819, 8192, 1)
>>> block_count(2000, 10)
3
"""

from __future__ import annotations

#: About how many numbers of ``x`` one block covers (a whole number of rows, at least one).
BLOCK = 8192

#: Inputs with at least this many numbers run on the parallel kernel; smaller ones serially,
#: where a thread launch would cost more than it saves. Either gives the same bits.
PARALLEL_MIN = 1 << 16


def block_rows(row: int) -> int:
    """Rows in one block, for rows of ``row`` numbers each."""
    return max(1, BLOCK // max(row, 1))


def block_count(rows: int, row: int) -> int:
    """How many blocks ``rows`` rows of ``row`` numbers make."""
    per = block_rows(row)
    return (rows + per - 1) // per
