/**
 * rootforge's public library API. Everything a program needs is exported here by name;
 * anything not listed is internal and may change.
 */
export { RootforgeError, isRootforgeError, type ErrorCode } from './errors.js';

// source → image
export { convert, parseSource, type ConvertOptions, type ConvertResult } from './convert.js';
export type { SourceSpec, Progress, Warning } from './sources/types.js';

// tar
export { TarParser } from './tar/parser.js';
export { readTar, type TarEntry } from './tar/reader.js';
export { openArchive } from './tar/decompress.js';
export type { TarHeader, TarHandler, TarParserOptions, TarWarning, EntryType, SparseSegment, Timestamp } from './tar/types.js';

// tree
export { FsTree, type NodeAttrs, type TreeOptions } from './tree/tree.js';
export type { Inode, NodeKind, Content, BlockRun } from './tree/types.js';
export type { ContentSink, BodySink } from './tree/sink.js';

// ext4
export { Ext4Writer, type ImageSummary } from './ext4/writer.js';
export { HEADROOM, imageOptions, type Ext4Options, type SizeSpec } from './ext4/options.js';
export { formatUuid, parseUuid } from './ext4/identity.js';
export { Ext4Image, type Stat, type DirListing, type FileKind } from './ext4/reader.js';
export { parseSize, parseBytes } from './util/size.js';

// OCI images and registries
export { resolveImage } from './convert.js';
export { LayerMerger } from './oci/merge.js';
export { resolveOciLayout } from './oci/layout.js';
export { resolveDockerArchive } from './oci/archive.js';
export { pullImage, RegistryClient, parseDockerReference, formatReference, parseCreds, type RegistryRef, type Credentials, type PullOptions, type PullResult } from './oci/registry.js';
export { BlobStore, type UnfinishedFile } from './oci/blobstore.js';
export { DEFAULT_MAX_LAYERS } from './oci/manifest.js';
export { ImageCache, defaultCacheDir, type CachedImage } from './oci/cache.js';
export { imageJson, IMAGE_JSON_PATH, type ImageJson } from './oci/image-json.js';
export type { ResolvedImage, Layer, Descriptor, ImageManifest, ImageIndex, ImageConfig, Platform, ImageLimits } from './oci/types.js';

// shipping ext4 images through registries (push / pull as OCI artifacts); other output formats
export { pushArtifact, type PushOptions, type PushResult } from './distribution/push.js';
export { pullArtifact, inspectRemote, fetchRemoteManifest, type ArtifactPullOptions, type ArtifactPullResult, type RemoteInfo } from './distribution/pull.js';
export { ARTIFACT_TYPE, ANNOTATION, type ChunkMap } from './distribution/artifact.js';
export { parseFormat, writeFormat, type OutputFormat, type FormatResult } from './output/formats.js';

// build specs, provisioning
export { buildImage, type BuildOptions, type BuildResult } from './build-image.js';
export { RootfsBuilder } from './rootfs-builder.js';
export { loadSpec, resolveSpec, specSchema, type ResolvedSpec } from './spec/load.js';
export type { BuildSpec, InitMode, MountSpec, StripItem, UserSpec } from './spec/types.js';

// VMs and the guest agent
export { AgentClient, ExecHandle, AgentRemoteError, connectUnix, connectFirecrackerVsock, type ReadyInfo, type ExecOptions, type ExecResult, type AgentClientOptions } from './agent-client/agent-client.js';
export { startQemu, qemuArgv, kernelCmdline } from './vm/qemu.js';
export { startFirecracker, firecrackerConfig, type FirecrackerConfig, type FirecrackerOptions } from './vm/firecracker.js';
export { chooseAccel } from './vm/accel.js';
export { machineProfile, chooseGuestAccel, type MachineProfile, type GuestArch } from './vm/machine.js';
export { targetArch, hostArch } from './provision/arch.js';
export type { Vm, VmConfig, KernelRef, BootTimings } from './vm/types.js';
export { resolveKernel, kernelFetch, kernelFromDeb, KernelCache, type ResolvedKernel } from './kernel/kernel.js';
export { bootImage, checkBoot, checkArch, imageBootInfo, type BootOptions, type BootCheckReport } from './vm/boot.js';

// sandbox instances (a read-only base + a writable disk each)
export { createInstance, type CreateInstanceOptions, type CreateInstanceResult } from './instance/create.js';
export { bootInstance, parseShare, type InstanceBootOptions, type ShareSpec } from './instance/boot.js';
export { describeInstance, listInstances, removeInstance, resetInstance, resizeInstance, setInstanceEnv, isInstanceDir, type InstanceInfo } from './instance/manage.js';
export { readRecord, type InstanceRecord, type InstanceConfig } from './instance/record.js';
export { findVirtiofsd, type Virtiofsd } from './vm/virtiofsd.js';

// static verification
export { verifyImage, DEFAULT_INIT, DEFAULT_AGENT } from './verify/verify.js';
export { formatReport, type RenderOptions } from './verify/render.js';
export type { VerifyReport, VerifyCheck, VerifyOptions, CheckId, Severity, ArchSource } from './verify/types.js';

// installed packages, content reports and image diffs
export { readPackageDb, imageFs, treeFs } from './packages/read.js';
export { packagesManifest, PACKAGES_JSON, type PackagesManifest } from './packages/manifest.js';
export type { PackageDb, PackageInfo, PackageFs, PackageManager } from './packages/types.js';
export { buildReport, type ImageReport, type SizeNode, type PackageSize } from './report/model.js';
export { diffImages, type ImageDiff, type ChangedEntry, type ChangeField } from './report/diff.js';
export { reportHtml, diffHtml } from './report/html.js';
export { writeReport, diffImageFiles } from './report/write.js';
// Alpine packages (rootforge's own apk installer)
export { installApk, type ApkInstallOptions, type ApkInstallResult, type InstalledSummary } from './sources/alpine/install.js';
export { readIndex, type IndexPackage, type RepoIndex } from './sources/alpine/apkindex.js';
export { openPackage, type OpenedPackage } from './sources/alpine/package.js';
export { resolve as resolveApkWorld, type Resolution } from './sources/alpine/resolve.js';
export { compareVersions as compareApkVersions, parseDep as parseApkDep, type Dep as ApkDep } from './sources/alpine/version.js';
export { readLock as readAlpineLock, writeLock as writeAlpineLock, type AlpineLock } from './sources/alpine/lock.js';
export type { AlpineSpec } from './sources/alpine/spec.js';
