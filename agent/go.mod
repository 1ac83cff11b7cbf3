module rootforge/agent

go 1.19
