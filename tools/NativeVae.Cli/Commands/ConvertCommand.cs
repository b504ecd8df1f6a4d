using NativeVae.Core;
using NativeVae.Weights;
using NativeVae.Formats;
using NativeVae.Loading;

namespace NativeVae.Cli.Commands;

/// <summary>
/// <c>nativevae convert &lt;input&gt; &lt;output.safetensors&gt; [--dtype fp32|fp16|bf16] [--family F]</c>:
/// any published layout (file, diffusers folder, TAESD encoder/decoder folder) to the converted format
/// (weights/README.md). The dtype defaults to the input's storage dtype (fp32 when mixed).
/// </summary>
internal sealed class ConvertCommand : ICommand
{
    public string Name => "convert";

    public string Usage => "convert <input> <output.safetensors> [--dtype fp32|fp16|bf16] [--family sd|sdxl|flux|sd3|taesd|taesdxl|taef1|taef2]";

    public string Summary => "convert a VAE checkpoint (file or folder) to NativeVae's safetensors format";

    public int Run(string[] args, TextWriter stdout, TextWriter stderr)
    {
        var line = new CommandLine(args, 2, "dtype", "family");
        DType? dtype = null;
        if (line.Option("dtype") is { } d)
        {
            try
            {
                dtype = DTypeNames.Parse(d);
            }
            catch (ArgumentException e)
            {
                throw new UsageException(e.Message);
            }
        }
        var options = new VaeLoadOptions(line.Option("family") is { } f ? InfoCommand.ParseFamily(f) : null);
        string input = line.Positional[0];
        string output = line.Positional[1];
        if (Directory.Exists(output)) throw new UsageException($"output '{output}' is a folder; give a file name");

        using var vae = VaeLoader.Open(input, options);
        var target = dtype ?? (vae.StorageDTypeName == "mixed" ? DType.F32 : DTypeNames.Parse(vae.StorageDTypeName));
        VaeConverter.Convert(vae, output, target);
        stdout.WriteLine($"{output}: {vae.Family.Name()}, {vae.Parameters.Count} tensors, {vae.ParameterCount} parameters, {DTypeNames.Name(target)}");
        return ExitCodes.Success;
    }
}
