Include "conf.d/*.cfg.lua"
