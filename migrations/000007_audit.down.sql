-- Reverts 000007_audit.

DROP TABLE audit_trail;
DROP FUNCTION audit_trail_reject_change();
