using NativeVae.Core;
using NativeVae.Loading;
using NativeVae.Formats;
using NativeVae.Models;
using NativeVae.Models.AutoencoderKl;
using NativeVae.Models.QwenImage;
using NativeVae.Models.Taesd;
using NativeVae.Loading.Layouts;
using NativeVae.Formats.Pickle;
using NativeVae.Formats.SafeTensors;

namespace NativeVae.Loading;

/// <summary>Overrides for <see cref="VaeLoader.Open"/>.</summary>
/// <param name="Family">the family whose published scaling/shift factors apply (and, for SD vs SDXL, or FLUX.1 vs
/// SD3 from a bare file, which it is).</param>
/// <param name="HubCacheRoot">the Hugging Face hub cache a repo id is looked up in; null: the environment's
/// (<see cref="HubCacheResolver.DefaultCacheRoot()"/>).</param>
internal sealed record VaeLoadOptions(ModelFamily? Family = null, string? HubCacheRoot = null);

/// <summary>
/// Opens any published VAE layout and presents it under canonical diffusers names, validated against the
/// model's declared parameter list (<see cref="AutoencoderKlParameters"/>, <see cref="TaesdParameters"/>):
/// <list type="bullet">
/// <item>a diffusers folder: <c>config.json</c> + <c>diffusion_pytorch_model[.fp16].safetensors</c> (or <c>.bin</c>),
///   or those sharded (<c>diffusion_pytorch_model[.fp16].safetensors.index.json</c>, see <see cref="ShardedTensorArchive"/>);
///   a pipeline folder (a hub snapshot) whose VAE is in <c>vae/</c>;</item>
/// <item>a Hugging Face repo id (<c>stabilityai/sd-vae-ft-mse</c>) when no such path exists: its snapshot in the
///   local hub cache (<see cref="HubCacheResolver"/>), never the network;</item>
/// <item>a single file, safetensors or PyTorch zip: diffusers names, LDM names with or without a
///   <c>first_stage_model.</c> / <c>vae.</c> prefix, FLUX.1 <c>ae</c>, legacy attention names; the config is
///   inferred from the tensors;</item>
/// <item>a NativeVae converted file (config in <c>__metadata__</c>, see weights/README.md);</item>
/// <item>a TAESD encoder/decoder pair: a folder holding both, or either file of the pair; a half alone loads
///   that half (the model refuses the other direction, naming the file).</item>
/// </list>
/// Errors are <see cref="InvalidDataException"/> (or <see cref="FileNotFoundException"/>) naming the file and tensor.
/// </summary>
internal static class VaeLoader
{
    public const string FormatKey = "format";
    public const string FormatValue = "nativevae";
    public const string FormatVersionKey = "format_version";
    public const string FormatVersion = "1";
    public const string FamilyKey = "family";
    public const string ConfigKey = "config";

    private const string ConfigFileName = "config.json";

    /// <summary>A diffusers config.json is about a kilobyte; a megabyte is far past any real one.</summary>
    private const long MaxConfigBytes = 1 << 20;
    private const string ClassNameKey = "_class_name";
    private const string PipelineVaeFolder = "vae";
    /// <summary>In diffusers' order of preference; each single file before its sharded form.</summary>
    private static readonly string[] DiffusersWeightFiles =
    [
        "diffusion_pytorch_model.safetensors",
        "diffusion_pytorch_model.safetensors" + ShardedTensorArchive.IndexSuffix,
        "diffusion_pytorch_model.fp16.safetensors",
        "diffusion_pytorch_model.fp16.safetensors" + ShardedTensorArchive.IndexSuffix,
        "diffusion_pytorch_model.bin",
        "diffusion_pytorch_model.bin" + ShardedTensorArchive.IndexSuffix,
        "diffusion_pytorch_model.fp16.bin",
        "diffusion_pytorch_model.fp16.bin" + ShardedTensorArchive.IndexSuffix,
    ];
    private static readonly string[] CheckpointExtensions = [".safetensors", ".pth", ".pt", ".ckpt", ".bin"];

    /// <summary>The one entry point: a file, a folder, or a repo id in the local hub cache.</summary>
    /// <exception cref="FileNotFoundException">nothing at <paramref name="path"/>, and (for a repo id) not cached.</exception>
    /// <exception cref="InvalidDataException">malformed or not a VAE; the message names the file and tensor.</exception>
    public static LoadedVae Open(string path, VaeLoadOptions? options = null)
    {
        options ??= new VaeLoadOptions();
        if (Directory.Exists(path)) return OpenFolder(path, options);
        if (File.Exists(path)) return OpenFile(path, options);
        if (HubCacheResolver.LooksLikeRepoId(path))
            return OpenFolder(HubCacheResolver.ResolveSnapshot(path, options.HubCacheRoot ?? HubCacheResolver.DefaultCacheRoot()), options);
        throw new FileNotFoundException($"{path}: no such file or folder", path);
    }


    private static LoadedVae OpenFolder(string folder, VaeLoadOptions options)
    {
        string configPath = Path.Combine(folder, ConfigFileName);
        if (File.Exists(configPath))
        {
            string weightsPath = DiffusersWeightFiles.Select(f => Path.Combine(folder, f)).FirstOrDefault(File.Exists)
                ?? throw new InvalidDataException($"{folder}: diffusers folder without weights (looked for {string.Join(", ", DiffusersWeightFiles)})");
            long configBytes = new FileInfo(configPath).Length;
            if (configBytes > MaxConfigBytes)
                throw new InvalidDataException($"{configPath}: config is {configBytes} bytes, more than the {MaxConfigBytes}-byte cap");
            string json = File.ReadAllText(configPath);
            var archive = TensorArchive.Open(weightsPath);
            return FromConfigJson(weightsPath, archive, json, configPath, options);
        }
        string pipelineVae = Path.Combine(folder, PipelineVaeFolder);
        if (Directory.Exists(pipelineVae)) return OpenFolder(pipelineVae, options);

        var checkpoints = Directory.EnumerateFiles(folder)
            .Where(f => CheckpointExtensions.Contains(Path.GetExtension(f), StringComparer.OrdinalIgnoreCase))
            .OrderBy(f => f, StringComparer.Ordinal).ToList();
        // Hub repos often hold one checkpoint in two forms (sd-vae-ft-mse-original: .ckpt and .safetensors):
        // the same weights, so keep one per name, in CheckpointExtensions' order (safetensors first).
        checkpoints = checkpoints
            .GroupBy(f => Path.GetFileNameWithoutExtension(f), StringComparer.Ordinal)
            .Select(g => g.OrderBy(f => Array.FindIndex(CheckpointExtensions, e => e.Equals(Path.GetExtension(f), StringComparison.OrdinalIgnoreCase))).First())
            .OrderBy(f => f, StringComparer.Ordinal).ToList();
        var encoders = checkpoints.Where(f => IsHalf(f, "encoder")).ToList();
        var decoders = checkpoints.Where(f => IsHalf(f, "decoder")).ToList();
        if (encoders.Count == 1 && decoders.Count == 1) return OpenTinyHalves(encoders[0], decoders[0], options);
        if (checkpoints.Count == 1) return OpenFile(checkpoints[0], options);
        throw new InvalidDataException(
            $"{folder}: not a diffusers folder (no config.json), nor one checkpoint, nor one TAESD encoder/decoder pair " +
            $"(found: {(checkpoints.Count == 0 ? "no checkpoints" : string.Join(", ", checkpoints.Select(Path.GetFileName)))})");
    }

    private static bool IsHalf(string file, string half) =>
        Path.GetFileName(file).Contains(half, StringComparison.OrdinalIgnoreCase);

    private static LoadedVae OpenFile(string path, VaeLoadOptions options)
    {
        var archive = TensorArchive.Open(path);
        try
        {
            var names = archive.Entries.Keys;
            if (archive.Metadata.TryGetValue(ConfigKey, out string? json))
            {
                if (options.Family is null && archive.Metadata.TryGetValue(FamilyKey, out string? family))
                {
                    try
                    {
                        options = options with { Family = ModelFamilies.Parse(family) };
                    }
                    catch (ArgumentException e)
                    {
                        throw new InvalidDataException($"{path}: __metadata__ {FamilyKey}: {e.Message}");
                    }
                    return FromConfigJson(path, archive, json, $"{path}: __metadata__ {ConfigKey}", options, applyFamilyFactors: false, fromMetadata: true);
                }
                return FromConfigJson(path, archive, json, $"{path}: __metadata__ {ConfigKey}", options, fromMetadata: true);
            }
            if (archive.Entries.Count > 0 && TaesdNaming.IsBareSequential(names))
            {
                bool encoder = IsHalf(path, "encoder");
                if (!encoder && !IsHalf(path, "decoder"))
                    throw new InvalidDataException($"{path}: a bare taesd.py state dict whose file name says neither encoder nor decoder");
                string sibling = SiblingHalf(path, encoder);
                archive.Dispose();
                if (!File.Exists(sibling)) return encoder ? OpenTinyHalves(path, null, options) : OpenTinyHalves(null, path, options);
                return encoder ? OpenTinyHalves(path, sibling, options) : OpenTinyHalves(sibling, path, options);
            }
            if (TaesdNaming.IsDiffusersTiny(names)) return TinyFromArchives(path, [archive], IdentityMap(archive), null, options);
            string prefix = VaePrefix.Detect(names);
            if (WanNaming.IsWanVae(names.Where(n => n.StartsWith(prefix, StringComparison.Ordinal)).Select(n => n[prefix.Length..])))
                return QwenFromArchive(path, archive, null, options, WanFamilyOf(path, options));
            return KlFromArchive(path, archive, null, options);
        }
        catch
        {
            archive.Dispose();
            throw;
        }
    }

    private static string SiblingHalf(string path, bool encoder)
    {
        string name = Path.GetFileName(path);
        string from = encoder ? "encoder" : "decoder";
        string to = encoder ? "decoder" : "encoder";
        int at = name.LastIndexOf(from, StringComparison.OrdinalIgnoreCase);
        return Path.Combine(Path.GetDirectoryName(path) ?? ".", name[..at] + to + name[(at + from.Length)..]);
    }

    private static LoadedVae FromConfigJson(string path, ITensorArchive archive, string json, string configOrigin,
        VaeLoadOptions options, bool applyFamilyFactors = true, bool fromMetadata = false)
    {
        try
        {
            var root = ConfigJsonReader.ParseObject(json, configOrigin, fromMetadata ? "config metadata" : "config");
            string? className = new ConfigJsonReader(root, configOrigin).String(ClassNameKey);
            if (className == TaesdConfigJson.ClassName)
                return TinyFromArchives(path, [archive], IdentityMap(archive), TaesdConfigJson.Parse(json, configOrigin), options);
            if (className == QwenImageConfigJson.ClassName)
                return QwenFromArchive(path, archive, QwenImageConfigJson.Parse(json, configOrigin), options, ModelFamily.QwenImage);
            if (className == QwenImageConfigJson.WanClassName)
            {
                var wan = QwenImageConfigJson.Parse(json, configOrigin);
                return QwenFromArchive(path, archive, wan, options, wan.IsResidual ? ModelFamily.Wan22 : ModelFamily.Wan);
            }
            if (className is not null && !AutoencoderKlConfigJson.Reads(className))
                throw new InvalidDataException(
                    $"{configOrigin}: model class '{className}' is not supported (AutoencoderKL, AutoencoderKLFlux2, AutoencoderKLQwenImage, AutoencoderKLWan, AutoencoderTiny)");
            var config = AutoencoderKlConfigJson.Parse(json, configOrigin);
            return KlFromArchive(path, archive, config, options, applyFamilyFactors);
        }
        catch
        {
            archive.Dispose();
            throw;
        }
    }

    private static LoadedVae KlFromArchive(string path, ITensorArchive archive, AutoencoderKlConfig? config,
        VaeLoadOptions options, bool applyFamilyFactors = true)
    {
        string prefix = VaePrefix.Detect(archive.Entries.Keys);
        var names = archive.Entries.Keys.Where(n => n.StartsWith(prefix, StringComparison.Ordinal)).Select(n => n[prefix.Length..]).ToList();
        int ldmBlocks = AutoencoderKlNaming.LdmBlockCount(names);
        var map = new Dictionary<string, (ITensorArchive, string, TensorShape)>(StringComparer.Ordinal);
        foreach (string local in names)
        {
            string stored = prefix + local;
            string? canonical = AutoencoderKlNaming.ToDiffusers(local, ldmBlocks);
            if (canonical is null)
            {
                if (local.StartsWith("encoder.", StringComparison.Ordinal) || local.StartsWith("decoder.", StringComparison.Ordinal))
                    throw new InvalidDataException($"{path}: tensor '{stored}' is not an AutoencoderKL parameter in any known layout");
                continue; // other models of a full checkpoint, EMA copies, loss modules
            }
            var shape = archive.Entries[stored].Shape;
            if (AutoencoderKlNaming.IsAttentionProjectionWeight(canonical) && shape.Rank == 4 && shape[2] == 1 && shape[3] == 1)
                shape = new TensorShape(shape[0], shape[1]); // LDM's 1x1 conv -> diffusers' Linear: same bytes
            if (map.ContainsKey(canonical))
                throw new InvalidDataException($"{path}: tensors '{map[canonical].Item2}' and '{stored}' both map to '{canonical}'");
            map[canonical] = (archive, stored, shape);
        }
        if (map.Count == 0) throw new InvalidDataException($"{path}: holds no VAE tensors (no encoder.* / decoder.* names)");

        ModelFamily family;
        if (config is null)
        {
            var inferred = AutoencoderKlConfigInference.Infer(map.ToDictionary(kv => kv.Key, kv => kv.Value.Item3), path);
            family = options.Family ?? KlFamilyRecognition.FromTensors(inferred, archive.Entries.Keys);
            RequireKl(path, family);
            config = AutoencoderKlConfigInference.WithFamilyFactors(inferred, family);
        }
        else if (options.Family is ModelFamily given)
        {
            family = given;
            RequireKl(path, family);
            if (applyFamilyFactors) config = AutoencoderKlConfigInference.WithFamilyFactors(config, family);
        }
        else
        {
            family = KlFamilyRecognition.FromConfig(config);
        }
        try
        {
            config.Validate();
        }
        catch (ArgumentException e)
        {
            throw new InvalidDataException($"{path}: {e.Message}");
        }
        if ((family == ModelFamily.Flux2) != config.LatentBatchNorm)
            throw new InvalidDataException(config.LatentBatchNorm
                ? $"{path}: holds FLUX.2's latent batch norm ({AutoencoderKlParameters.BatchNormMean}), so it is a flux2 VAE, not {family.Name()}"
                : $"{path}: family flux2 needs FLUX.2's {AutoencoderKlParameters.BatchNormMean} and {AutoencoderKlParameters.BatchNormVariance} (the pipeline's latent statistics); this VAE has none");
        var declared = AutoencoderKlParameters.Enumerate(config);
        var source = new MappedWeightSource(path, [archive], map);
        ParameterCheck.Require(source, declared, refuseUndeclared: true);
        return new LoadedVae(path, family, config, null, declared, source);
    }

    private static void RequireKl(string path, ModelFamily family)
    {
        if (family.IsTiny()) throw new InvalidDataException($"{path}: holds an AutoencoderKL, not a {family.Name()} tiny autoencoder");
        if (family.IsWanNetwork()) throw new InvalidDataException($"{path}: holds an AutoencoderKL, not a {family.Name()} (Wan) VAE");
    }

    /// <summary>
    /// An AutoencoderKLQwenImage in diffusers' names or Wan's originals (<see cref="WanNaming"/>), with a prefix or
    /// none; its config from config.json, else read off the tensors (<see cref="QwenImageConfigInference"/>).
    /// </summary>
    private static LoadedVae QwenFromArchive(string path, ITensorArchive archive, QwenImageConfig? config, VaeLoadOptions options, ModelFamily family)
    {
        if (options.Family is { } given && !given.IsWanNetwork())
            throw new InvalidDataException($"{path}: holds a Qwen-Image / Wan VAE, not a {given.Name()} one");
        string prefix = VaePrefix.Detect(archive.Entries.Keys);
        var locals = archive.Entries.Keys.Where(n => n.StartsWith(prefix, StringComparison.Ordinal)).Select(n => n[prefix.Length..]).ToList();
        bool original = WanNaming.IsOriginal(locals);
        int resBlocks = original ? WanNaming.ResBlocks(locals) : 0;
        var map = new Dictionary<string, (ITensorArchive, string, TensorShape)>(StringComparer.Ordinal);
        foreach (string local in locals)
        {
            string stored = prefix + local;
            bool part = local.StartsWith("encoder.", StringComparison.Ordinal) || local.StartsWith("decoder.", StringComparison.Ordinal);
            string? canonical = original ? WanNaming.ToDiffusers(local, resBlocks)
                : part || local.StartsWith("quant_conv.", StringComparison.Ordinal) || local.StartsWith("post_quant_conv.", StringComparison.Ordinal) ? local
                : null;
            if (canonical is null)
            {
                if (part) throw new InvalidDataException($"{path}: tensor '{stored}' is not a Qwen-Image / Wan VAE parameter in any known layout");
                continue; // the rest of a full checkpoint
            }
            if (map.ContainsKey(canonical))
                throw new InvalidDataException($"{path}: tensors '{map[canonical].Item2}' and '{stored}' both map to '{canonical}'");
            map[canonical] = (archive, stored, archive.Entries[stored].Shape);
        }
        config ??= QwenImageConfigInference.Infer(map.ToDictionary(kv => kv.Key, kv => kv.Value.Item3), path);
        try
        {
            config.Validate();
        }
        catch (ArgumentException e)
        {
            throw new InvalidDataException($"{path}: {e.Message}");
        }
        // Wan 2.2's network is its own family, whatever the file is named; Wan 2.1's serves qwenimage and wan.
        if (config.IsResidual != (family == ModelFamily.Wan22))
            family = config.IsResidual ? ModelFamily.Wan22 : family == ModelFamily.Wan22 ? ModelFamily.Wan : family;
        if (options.Family is { } asked && asked != family && (asked == ModelFamily.Wan22 || family == ModelFamily.Wan22))
            throw new InvalidDataException(config.IsResidual
                ? $"{path}: holds a Wan 2.2 VAE (residual blocks, patch_size {config.PatchSize}: family wan22), not a {asked.Name()} one"
                : $"{path}: holds a Wan 2.1 / Qwen-Image VAE (family wan or qwenimage), not a Wan 2.2 (wan22) one");
        family = options.Family ?? family;
        var declared = QwenImageParameters.Enumerate(config);
        var source = new MappedWeightSource(path, [archive], map);
        ParameterCheck.Require(source, declared, refuseUndeclared: true);
        return new LoadedVae(path, family, null, null, declared, source, config);
    }

    /// <summary>
    /// A bare file of the Wan 2.1 network is Qwen-Image's VAE or Wan's, the same tensors: the family given, else wan
    /// when the file is named so (ComfyUI's <c>wan_2.1_vae.safetensors</c>), else qwenimage.
    /// </summary>
    private static ModelFamily WanFamilyOf(string path, VaeLoadOptions options) =>
        options.Family is ModelFamily.Wan or ModelFamily.Wan22 || (options.Family is null && Path.GetFileName(path).Contains("wan", StringComparison.OrdinalIgnoreCase))
            ? ModelFamily.Wan : ModelFamily.QwenImage;

    /// <summary>A TAESD encoder and/or decoder in taesd.py's bare Sequential names (at least one is given).</summary>
    private static LoadedVae OpenTinyHalves(string? encoderPath, string? decoderPath, VaeLoadOptions options)
    {
        var archives = new List<ITensorArchive>();
        try
        {
            var map = new Dictionary<string, (ITensorArchive, string, TensorShape)>(StringComparer.Ordinal);
            foreach (var (path, isEncoder) in new[] { (encoderPath, true), (decoderPath, false) })
            {
                if (path is null) continue;
                var archive = TensorArchive.Open(path);
                archives.Add(archive);
                if (!TaesdNaming.IsBareSequential(archive.Entries.Keys))
                    throw new InvalidDataException($"{archive.Path}: not a taesd.py {(isEncoder ? "encoder" : "decoder")} state dict (names like '1.conv.0.weight')");
                foreach (var (name, entry) in archive.Entries)
                {
                    string canonical = isEncoder ? TaesdNaming.EncoderName(name) : TaesdNaming.DecoderName(name, archive.Path);
                    map[canonical] = (archive, name, entry.Shape);
                }
            }
            string origin = encoderPath is not null && decoderPath is not null ? $"{encoderPath} + {decoderPath}" : (encoderPath ?? decoderPath)!;
            return TinyFromArchives(origin, archives, map, null, options);
        }
        catch
        {
            foreach (var archive in archives) archive.Dispose();
            throw;
        }
    }

    private static Dictionary<string, (ITensorArchive, string, TensorShape)> IdentityMap(ITensorArchive archive) =>
        archive.Entries.ToDictionary(kv => kv.Key, kv => (archive, kv.Key, kv.Value.Shape), StringComparer.Ordinal);

    private static LoadedVae TinyFromArchives(string origin, IReadOnlyList<ITensorArchive> archives,
        Dictionary<string, (ITensorArchive Archive, string Stored, TensorShape Shape)> map, TaesdConfig? config, VaeLoadOptions options)
    {
        const string DecoderConvIn = TaesdParameters.DecoderPrefix + "0.weight";
        const string EncoderConvIn = TaesdParameters.EncoderPrefix + "0.weight";
        bool hasEncoder = map.ContainsKey(EncoderConvIn);
        bool hasDecoder = map.ContainsKey(DecoderConvIn);
        ModelFamily family;
        if (config is null)
        {
            int latent = hasDecoder && map[DecoderConvIn].Shape.Rank == 4 ? map[DecoderConvIn].Shape[1]
                : hasEncoder ? EncoderLatentChannels(map)
                : throw new InvalidDataException($"{origin}: cannot infer the TAESD config: neither a 4-d '{DecoderConvIn}' nor '{EncoderConvIn}' is there");
            bool groupNorm = map.Keys.Any(k => k.Contains(".pool.", StringComparison.Ordinal));
            family = options.Family ?? RecogniseTiny(origin, latent, groupNorm);
            if (!family.IsTiny()) throw new InvalidDataException($"{origin}: holds a tiny autoencoder, not a {family.Name()} AutoencoderKL");
            var published = TaesdConfig.For(family);
            if (published.LatentChannels != latent || published.UseMidBlockGroupNorm != groupNorm)
                throw new InvalidDataException(
                    $"{origin}: family {family.Name()} has {published.LatentChannels} latent channels{(published.UseMidBlockGroupNorm ? " and GroupNorm blocks" : "")}, " +
                    $"but the file has {latent}{(groupNorm ? " and GroupNorm blocks" : "")}");
            config = published;
        }
        else
        {
            family = options.Family ?? RecogniseTiny(origin, config.LatentChannels, config.UseMidBlockGroupNorm);
            if (!family.IsTiny()) throw new InvalidDataException($"{origin}: holds a tiny autoencoder, not a {family.Name()} AutoencoderKL");
        }
        // A half alone declares only its own parameters (TaesdModel builds only that half).
        var declared = TaesdParameters.OfHalvesPresent(config, map.ContainsKey, out _, out _);
        var source = new MappedWeightSource(origin, archives, map.ToDictionary(kv => kv.Key, kv => (kv.Value.Archive, kv.Value.Stored, kv.Value.Shape)));
        ParameterCheck.Require(source, declared, refuseUndeclared: true);
        return new LoadedVae(origin, family, null, config, declared, source);
    }

    /// <summary>The output channels of the encoder's last layer (its conv_out), the highest-numbered conv.</summary>
    private static int EncoderLatentChannels(Dictionary<string, (ITensorArchive Archive, string Stored, TensorShape Shape)> map)
    {
        const string WeightSuffix = ".weight";
        int last = -1;
        TensorShape lastShape = default;
        foreach (var (name, entry) in map)
        {
            if (!name.StartsWith(TaesdParameters.EncoderPrefix, StringComparison.Ordinal) || !name.EndsWith(WeightSuffix, StringComparison.Ordinal)) continue;
            string index = name[TaesdParameters.EncoderPrefix.Length..^WeightSuffix.Length];
            if (int.TryParse(index, out int i) && i > last && entry.Shape.Rank == 4)
            {
                last = i;
                lastShape = entry.Shape;
            }
        }
        return last >= 0 ? lastShape[0] : 0;
    }

    private static ModelFamily RecogniseTiny(string origin, int latentChannels, bool groupNorm) => (latentChannels, groupNorm) switch
    {
        (4, false) => ModelFamily.Taesd,
        (16, false) => ModelFamily.Taef1,
        (32, true) => ModelFamily.Taef2,
        _ => throw new InvalidDataException($"{origin}: a tiny autoencoder with {latentChannels} latent channels{(groupNorm ? " and GroupNorm blocks" : "")} matches no known family; pass --family"),
    };
}
