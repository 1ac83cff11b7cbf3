/**
 * Which accelerator QEMU should use. KVM when /dev/kvm is usable and real; these CI machines
 * have a paravirtual KVM ("PVM", module kvm_pvm) that cannot boot stock kernels, so there we use
 * TCG. ROOTFORGE_ACCEL=kvm|tcg forces a choice.
 */
import { accessSync, constants, existsSync, readFileSync } from 'node:fs';
import { fail } from '../errors.js';

export type Accel = 'kvm' | 'tcg';

export interface AccelChoice {
  accel: Accel;
  reason: string;
}

export function chooseAccel(want: 'auto' | Accel = 'auto', env: NodeJS.ProcessEnv = process.env): AccelChoice {
  const forced = env['ROOTFORGE_ACCEL'];
  if (forced && forced !== 'auto') {
    if (forced !== 'kvm' && forced !== 'tcg') fail('OPTION_INVALID', 'use ROOTFORGE_ACCEL', 'expected kvm, tcg or auto', forced);
    return { accel: forced, reason: 'ROOTFORGE_ACCEL' };
  }
  if (want !== 'auto') return { accel: want, reason: 'requested' };
  if (!existsSync('/dev/kvm')) return { accel: 'tcg', reason: 'no /dev/kvm' };
  try {
    accessSync('/dev/kvm', constants.R_OK | constants.W_OK);
  } catch (e) {
    return { accel: 'tcg', reason: `/dev/kvm not usable (${(e as NodeJS.ErrnoException).code})` };
  }
  if (existsSync('/sys/module/kvm_pvm')) return { accel: 'tcg', reason: 'KVM here is PVM (kvm_pvm), which cannot boot stock kernels' };
  return { accel: 'kvm', reason: '/dev/kvm' };
}

/**
 * The host TSC frequency in kHz for tsc_early_khz=: under TCG about half the boots otherwise
 * hang calibrating the TSC (MACHINE-NOTES).
 */
export function hostTscKhz(): number | undefined {
  try {
    const m = /^cpu MHz\s*:\s*([0-9.]+)/m.exec(readFileSync('/proc/cpuinfo', 'utf8'));
    return m ? Math.round(Number(m[1]) * 1000) : undefined;
  } catch (e) {
    void e; // no /proc/cpuinfo (not Linux): the parameter is simply left out
    return undefined;
  }
}
