"""An Ansible playbook that rolls a plan out to a fleet in waves, with health checks and rollback.

It runs the plan's own scripts (the same ones an operator runs by hand); Ansible only adds the
waves (serial), the stop-on-failure threshold and the automatic rollback of a failed host.
"""

from __future__ import annotations

import json
import shlex

from dynmigrate.model.common import escape
from dynmigrate.model.plan import MigrationPlan

PLAYBOOK = r"""---
# dynmigrate fleet rollout. Each host gets the plan folder made from ITS OWN scan:
#   plans/<inventory_hostname>/  (dynmigrate plan ROOT -o plans/<host> ...)
# Run:  ansible-playbook -i inventory site.yml -e dynmigrate_stage=stage1
# Waves: dynmigrate_waves (default 1 host, then 10%, then 50%, then the rest); the play
# stops when a wave has more than dynmigrate_max_fail_percent failed hosts.
- name: dynmigrate staged rollout
  hosts: "{{ dynmigrate_hosts | default('all') }}"
  become: true
  gather_facts: false
  serial: "{{ dynmigrate_waves | default([1, '10%', '50%', '100%']) }}"
  max_fail_percentage: "{{ dynmigrate_max_fail_percent | default(0) }}"
  vars:
    plan_src: "{{ dynmigrate_plans | default(playbook_dir ~ '/../plans') }}/{{ inventory_hostname }}/"
    plan_dest: "{{ dynmigrate_plan_dest | default('/var/lib/dynmigrate/plan') }}"
    stage: "{{ dynmigrate_stage }}"
    confirm: "{{ dynmigrate_confirm | default([]) }}"
  tasks:
    - name: The stage is one of the plan's stages
      ansible.builtin.assert:
        that: stage in ['stage0', 'stage1', 'stage2', 'stage3']
        fail_msg: "set -e dynmigrate_stage=stage0|stage1|stage2|stage3"

    - name: Copy this host's plan
      ansible.builtin.copy:
        src: "{{ plan_src }}"
        dest: "{{ plan_dest }}/"
        mode: preserve

    - name: Run the stage, roll it back on failure
      block:
        - name: "migrate.sh {{ stage }}"
          ansible.builtin.command:
            argv: "{{ [plan_dest ~ '/migrate.sh'] + (confirm | map('regex_replace', '^', '--confirm=') | list)
              + [stage] }}"
          register: dynmigrate_run
          changed_when: true

        - name: dynmigrate verify (after stage2 and stage3)
          ansible.builtin.command:
            argv: [dynmigrate, verify]
          when: stage in ['stage2', 'stage3'] and dynmigrate_verify | default(false) | bool
          changed_when: false
      rescue:
        - name: "rollback.sh {{ stage }}"
          ansible.builtin.command:
            argv: ["{{ plan_dest }}/rollback.sh", "{{ stage }}"]
          changed_when: true
          when: dynmigrate_auto_rollback | default(true) | bool

        - name: Fail this host (the wave counts it)
          ansible.builtin.fail:
            msg: "{{ stage }} failed on {{ inventory_hostname }} and was rolled back; see /var/lib/dynmigrate/log"
"""


def ansible_readme(plan: MigrationPlan) -> str:
    """ansible/README.md for this plan: its accounts, and the manual steps stage 2 waits for."""
    selection = " ".join(f"--account {shlex.quote(escape(a.account))}" for a in plan.accounts)
    steps = [i for a in plan.accounts for i in a.confirm_ids]
    confirm = json.dumps({"dynmigrate_confirm": steps}, ensure_ascii=True)
    if plan.accounts:
        names = ", ".join(f"`{escape(a.account)}`" for a in plan.accounts)
        what = f"This plan migrates {names}."
    else:
        return (
            "# Rolling the plan out with Ansible\n\n"
            "This plan migrates no account (REPORT.md lists the options): there is nothing to roll out,\n"
            "and `site.yml` has no stage to run for it.\n"
        )
    lines = [
        "# Rolling the plan out with Ansible",
        "",
        what,
        "",
        "`site.yml` runs the same `migrate.sh`/`rollback.sh` an operator runs by hand, one stage at a",
        "time, in waves (`serial`): one host first, then 10 %, 50 % and the rest. A host whose stage",
        "fails is rolled back (`rollback.sh STAGE`) and counts as failed; with the default",
        "`dynmigrate_max_fail_percent=0` the play stops before the next wave.",
        "",
        "Each host needs the plan made from its own scan (UIDs and files differ between hosts):",
        "",
        "    for h in $(ansible-inventory --list | jq -r '._meta.hostvars | keys[]'); do",
        f"      dynmigrate plan /mnt/images/$h {selection} -o plans/$h",
        "    done",
        "    ansible-playbook -i inventory ansible/site.yml -e dynmigrate_stage=stage0",
        "    ansible-playbook -i inventory ansible/site.yml -e dynmigrate_stage=stage1",
        "    ansible-playbook -i inventory ansible/site.yml -e dynmigrate_stage=stage2 \\",
        f"        -e {shlex.quote(confirm)}",
        "    ansible-playbook -i inventory ansible/site.yml -e dynmigrate_stage=stage3",
        "",
    ]
    if steps:
        lines += [
            "Stage 2 waits for every acknowledgement and manual step of this plan (REPORT.md's checklist): "
            + ", ".join(f"`{escape(s)}`" for s in steps)
            + ". Confirm only what you checked on every host.",
            "",
        ]
    else:
        lines += ["This plan has no acknowledgement and no manual step: stage 2 needs no confirmation.", ""]
    lines += [
        "Variables: `dynmigrate_plans` (folder holding `plans/<host>/`), `dynmigrate_plan_dest` (where the",
        "plan is copied on each host, default `/var/lib/dynmigrate/plan`), `dynmigrate_waves`,",
        "`dynmigrate_max_fail_percent`, `dynmigrate_confirm` (ids confirmed for stage 2),",
        "`dynmigrate_auto_rollback` (default true), `dynmigrate_verify` (run `dynmigrate verify`,",
        "needs dynmigrate on the hosts).",
    ]
    return "\n".join(lines) + "\n"
