"""jhash (lookup3 hashlittle) known answers."""

from pyvswitch.jhash import jhash, jhash_1word, jhash_2words, jhash_3words


def test_lookup3_known_answers() -> None:
    # Bob Jenkins' lookup3.c driver5(): hashlittle("", 0, 0) == 0xdeadbeef,
    # hashlittle("Four score and seven years ago", 30, 0) == 0x17770551,
    # and with initval 1: 0xcd628161.
    assert jhash(b"", 0) == 0xDEADBEEF
    assert jhash(b"Four score and seven years ago", 0) == 0x17770551
    assert jhash(b"Four score and seven years ago", 1) == 0xCD628161


def test_word_variants_match_byte_hash() -> None:
    # __jhash_nwords(a, b, c, initval + JHASH_INITVAL + (n << 2)) equals jhash over
    # the little-endian bytes of the n words.
    for a, b, c, iv in ((1, 2, 3, 0), (0xDEADBEEF, 7, 0xFFFFFFFF, 12345)):
        words = a.to_bytes(4, "little") + b.to_bytes(4, "little") + c.to_bytes(4, "little")
        assert jhash_3words(a, b, c, iv) == jhash(words, iv)
        assert jhash_2words(a, b, iv) == jhash(words[:8], iv)
        assert jhash_1word(a, iv) == jhash(words[:4], iv)
