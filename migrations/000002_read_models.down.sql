-- Reverts 000002_read_models.

DROP TABLE projection_checkpoints;
DROP TABLE credit_balances_read_model;
