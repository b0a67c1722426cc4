-- Reverts 000009_synthetic_decoy_tokens.

DROP TABLE synthetic_decoy_tokens;
