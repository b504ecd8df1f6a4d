using System.Text.Json.Nodes;
using NativeVae.Core;
using NativeVae.Models;
using NativeVae.Weights;
using NativeVae.Formats;
using NativeVae.Loading;

namespace NativeVae.Cli.Commands;

/// <summary>
/// <c>nativevae info &lt;file-or-folder&gt; [--family F]</c>: prints the model's config as one JSON object with
/// diffusers' key names, plus <c>family</c>, <c>dtype</c> (storage) and <c>parameters</c> (the count).
/// </summary>
internal sealed class InfoCommand : ICommand
{
    public string Name => "info";

    public string Usage => "info <file-or-folder> [--family sd|sdxl|flux|sd3|taesd|taesdxl|taef1|taef2]";

    public string Summary => "print a VAE checkpoint's config, family, dtype and parameter count as JSON";

    public int Run(string[] args, TextWriter stdout, TextWriter stderr)
    {
        var line = new CommandLine(args, 1, "family");
        var options = new VaeLoadOptions(line.Option("family") is { } f ? ParseFamily(f) : null);
        using var vae = VaeLoader.Open(line.Positional[0], options);
        var json = vae.ConfigJson();
        json["family"] = vae.Family.Name();
        json["dtype"] = vae.StorageDTypeName;
        json["parameters"] = vae.ParameterCount;
        stdout.WriteLine(json.ToJsonString());
        return ExitCodes.Success;
    }

    internal static ModelFamily ParseFamily(string name)
    {
        try
        {
            return ModelFamilies.Parse(name);
        }
        catch (ArgumentException e)
        {
            throw new UsageException(e.Message);
        }
    }
}
