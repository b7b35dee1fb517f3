import { describeForeignDebian } from "./foreign-debian.ts";

describeForeignDebian({
  label: "debian-12-arm64",
  example: "debian-arm64.yml",
  unameM: "aarch64",
  runnerArch: "ARM64",
  debianMajor: 12,
  apt: /apt 2\.6\.\d+ \(arm64\)/,
  gccTriple: "aarch64-linux-gnu",
});
