"""dynmigrate rehearse: run the whole migration on a throwaway overlay copy and report what happened.

model.py      the result (pure data) and its JSON form
request.py    what the CLI asks the worker for
classify.py   observed facts -> outcome class (pure)
render.py     table, json and markdown
overlay.py    overlay layers and options, kernel feature checks (pure parts tested without root)
container.py  a systemd-nspawn boot of the merged tree, commands through nsenter
worker.py     runs inside its own mount and pid namespace: mounts, boots, plans, stages, rollbacks
launch.py     starts the worker under unshare and watches it (what the CLI calls)
"""
