"""The plan folder as one more output format: REPORT.md, plan.json, the userdel plan, the scripts
(their hand-written shell fragments lib.sh, stages.sh and repair.sh with a generated data section),
the Ansible playbook and the dry-run preview. Pure: text from a MigrationPlan; output/ writes it."""
