// Prints the compiler or linker flags of the MPI installation (`node scripts/mpi-flags.mjs compile|link`) for
// native/mpi/binding.gyp: Open MPI's `mpicc --showme:compile|link`, or the flags in MPICH's `mpicc -show`.

import { spawnSync } from 'node:child_process';

const kind = process.argv[2] === 'link' ? 'link' : 'compile';
const mpicc = process.env.MPICC || 'mpicc';
const showme = spawnSync(mpicc, [`--showme:${kind}`], { encoding: 'utf8' });
if (showme.status === 0 && showme.stdout.trim() !== '') {
  console.log(showme.stdout.trim());
} else {
  const show = spawnSync(mpicc, ['-show'], { encoding: 'utf8' });
  if (show.status !== 0) {
    console.error(`kiln: ${mpicc} reports no flags (${show.error?.message ?? show.stderr.trim()})`);
    process.exit(1);
  }
  const keep = kind === 'compile' ? /^-(I|D|pthread)/ : /^-(L|l|Wl|pthread)/;
  console.log(show.stdout.trim().split(/\s+/).slice(1).filter((t) => keep.test(t)).join(' '));
}
