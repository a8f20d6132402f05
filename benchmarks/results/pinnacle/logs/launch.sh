#!/bin/bash
# Background run of benchmarks/pinnacle.py at 5 % of PINNacle's steps, two invocations of one thread each;
# rerunning it resumes (finished rows are skipped); logs are appended, PIDs listed in pids.txt.
cd /work/main
LOGS=benchmarks/results/pinnacle/logs
export DDE_BACKEND=pytorch
nohup .venv/bin/python benchmarks/pinnacle.py --problems burgers1d wave1d --steps-scale 0.05 --threads 1 >> $LOGS/run_a.log 2>&1 &
echo "A $! burgers1d wave1d $LOGS/run_a.log" >> $LOGS/pids.txt
nohup .venv/bin/python benchmarks/pinnacle.py --problems poisson2d_classic poisson_boltzmann2d --steps-scale 0.05 --threads 1 >> $LOGS/run_b.log 2>&1 &
echo "B $! poisson2d_classic poisson_boltzmann2d $LOGS/run_b.log" >> $LOGS/pids.txt
cat $LOGS/pids.txt
# The Navier-Stokes rows (run after systems landed), one more thread:
# DDE_BACKEND=pytorch nohup nice -n 5 .venv/bin/python benchmarks/pinnacle.py --problems ns2d_classic ns2d_lid_driven --steps-scale 0.05 --threads 1 >> $LOGS/run_c.log 2>&1 &
