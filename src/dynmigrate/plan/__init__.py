"""plan: scan result + selection -> MigrationPlan (pure data: drop-ins, directories, what the scripts act on).

Rendering the plan folder is render/planfolder/; writing it and running systemd-analyze is output/."""
