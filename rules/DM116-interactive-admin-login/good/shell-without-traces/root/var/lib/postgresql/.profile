# only a profile: no trace of an interactive session
