-- The rebuilt tables keep their constraints (removing them would be another rebuild).
DROP TRIGGER brands_budget_limit_insert;
DROP TRIGGER brands_budget_limit_update;
DROP TRIGGER campaigns_cap_limit_insert;
DROP TRIGGER campaigns_cap_limit_update;
