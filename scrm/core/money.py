"""Money is integer fen (分). These helpers are the only place fen become text."""

from __future__ import annotations


def format_fen(fen: int, symbol: str = "¥") -> str:
    """1234550 → '¥12,345.50'; negative amounts keep the sign in front: '-¥3.00'."""
    if not isinstance(fen, int) or isinstance(fen, bool):
        raise TypeError("money must be integer fen")
    sign = "-" if fen < 0 else ""
    yuan, cents = divmod(abs(fen), 100)
    return f"{sign}{symbol}{yuan:,}.{cents:02d}"


def parse_yuan(text: str) -> int:
    """'12.5' → 1250 fen. Rejects more than two decimals rather than rounding money silently."""
    text = text.strip().replace(",", "").lstrip("¥").strip()
    if not text:
        raise ValueError("empty amount")
    negative = text.startswith("-")
    if negative:
        text = text[1:]
    whole, _, frac = text.partition(".")
    if not whole.isdecimal() and not (whole == "" and frac):
        raise ValueError(f"not an amount: {text!r}")
    if frac and (not frac.isdecimal() or len(frac) > 2):
        raise ValueError(f"not an amount with at most two decimals: {text!r}")
    fen = int(whole or "0") * 100 + int((frac + "00")[:2])
    return -fen if negative else fen
