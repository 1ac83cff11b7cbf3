module rootforge/initrd

go 1.19
