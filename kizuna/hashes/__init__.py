"""Hash banks: PDQ and exact hashes of known violent extremist content as marked STIX signals.

`signals` is the STIX form of a signal, `hashing` computes hashes of media, `hashlists` reads
hash lists and ThreatExchange/HMA exports, `index` is the near-match index (faiss) with its
brute-force reference, `banks` keeps one index per readable collection up to date through the
node's read path, and `api` serves POST /{api_root}/hashes/match (docs/hashes.md).
"""
