"""Hash banks: PDQ and exact hashes of known violent extremist content as marked STIX signals.

`signals` is the STIX form of a signal, `hashing` computes hashes of media, `video` computes vPDQ
(with the optional vpdq package) and compares videos by vPDQ's rule, `hashlists` reads
hash lists and ThreatExchange/HMA exports, `index` is the near-match index (a multi-index over
numpy arrays, `mih`, probed by the compiled loops of `kernels`) with its brute-force reference,
`banks` keeps one shared index per bank up to date and checks each candidate's visibility,
and `api` serves POST /{api_root}/hashes/match (docs/hashes.md).
"""
