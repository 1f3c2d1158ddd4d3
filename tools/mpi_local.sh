#!/usr/bin/env bash
# Runs a command (mpirun, ompi_info) with OpenMPI set up for one machine:
# every byte between ranks stays inside it. Ranks talk through shared memory
# (btl self,vader; pml ob1, so UCX, which may pick a network card, is never
# used), and the TCP paths are restricted to the loopback interface: the
# out-of-band channel between mpirun and the ranks (oob_tcp_if_include) and
# the TCP transport should anyone add it to btl (btl_tcp_if_include).
# Waiting ranks yield their core (mpi_yield_when_idle): on a machine shared
# with other work, a rank spinning in MPI_Allreduce otherwise holds a core the
# slower rank needs (config S, load 7 on 2 cores: 124 against 156 ms a step).
# Also lets root run mpirun (CI's machine runs as root) and allows more ranks
# than cores. Used by make test-mpi, make bench-mpi and the README.
# Usage: tools/mpi_local.sh mpirun -np 2 build/mpi/gpt train ...
set -euo pipefail
export OMPI_MCA_pml=ob1
export OMPI_MCA_btl=self,vader
export OMPI_MCA_btl_tcp_if_include=lo
export OMPI_MCA_oob_tcp_if_include=lo
export OMPI_MCA_mpi_yield_when_idle=1
export OMPI_MCA_rmaps_base_oversubscribe=1
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
exec "$@"
