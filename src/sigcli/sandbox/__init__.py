"""`sig run --sandbox`: run a program where sig's data and the user's secret stores are not, with the
network reachable only through sig's proxy (bubblewrap, Linux). See README "Agent sandbox"."""
