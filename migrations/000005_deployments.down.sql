-- Reverts 000005_deployments.

DROP TABLE feature_flags;
DROP TABLE deployment_history;
