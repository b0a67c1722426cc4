-- Reverts 000006_compliance.

DROP TABLE compliance_evidence;
DROP FUNCTION compliance_evidence_guard();
DROP TABLE compliance_findings;
DROP TABLE compliance_controls;
DROP TABLE compliance_frameworks;
