import { describeForeignDebian } from "./foreign-debian.ts";

describeForeignDebian({
  label: "debian-13-riscv64",
  example: "debian-riscv64.yml",
  unameM: "riscv64",
  runnerArch: "RISCV64",
  debianMajor: 13,
  apt: /apt 3\.0\.\d+ \(riscv64\)/,
  gccTriple: "riscv64-linux-gnu",
  ownNode: 20,
});
