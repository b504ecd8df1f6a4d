// Marks one version requirement of an ELF shared object as weak (VER_FLG_WEAK), in place.
//
// Usage: weaken_version FILE VERSION     e.g.  weaken_version libLibTorchSharp.so GLIBCXX_3.4.32
//
// patchelf --clear-symbol-version unbinds the symbols from a version but leaves the version requirement itself
// in .gnu.version_r, and ld.so refuses to load an object whose required version its dependency lacks. A weak
// requirement is only checked for diagnostics, so the object then loads. Exit 0 when the requirement is weak
// afterwards (including when it already was), 1 when the file has no such requirement, 2 on a bad file.
#include <elf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(const char *file, const char *why)
{
    fprintf(stderr, "weaken_version: %s: %s\n", file, why);
    return 2;
}

int main(int argc, char **argv)
{
    if (argc != 3)
    {
        fprintf(stderr, "usage: weaken_version FILE VERSION\n");
        return 2;
    }
    const char *file = argv[1];
    const char *version = argv[2];

    FILE *f = fopen(file, "r+b");
    if (!f) return fail(file, "cannot open");
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *image = malloc((size_t)size);
    if (!image || fread(image, 1, (size_t)size, f) != (size_t)size) return fail(file, "cannot read");

    const Elf64_Ehdr *header = (const Elf64_Ehdr *)image;
    if (size < (long)sizeof(Elf64_Ehdr) || memcmp(header->e_ident, ELFMAG, SELFMAG) != 0
        || header->e_ident[EI_CLASS] != ELFCLASS64)
        return fail(file, "not a 64-bit ELF file");
    if (header->e_shoff + (Elf64_Off)header->e_shnum * sizeof(Elf64_Shdr) > (Elf64_Off)size)
        return fail(file, "section headers past the end of the file");
    const Elf64_Shdr *sections = (const Elf64_Shdr *)(image + header->e_shoff);

    int found = 0;
    for (int s = 0; s < header->e_shnum; s++)
    {
        if (sections[s].sh_type != SHT_GNU_verneed) continue;
        // The verneed names live in the string table the section links to (.dynstr).
        const Elf64_Shdr *strings = &sections[sections[s].sh_link];
        Elf64_Off need = sections[s].sh_offset;
        for (Elf64_Word n = 0; n < sections[s].sh_info; n++)
        {
            Elf64_Verneed *verneed = (Elf64_Verneed *)(image + need);
            Elf64_Off aux = need + verneed->vn_aux;
            for (Elf64_Half a = 0; a < verneed->vn_cnt; a++)
            {
                Elf64_Vernaux *vernaux = (Elf64_Vernaux *)(image + aux);
                const char *name = (const char *)(image + strings->sh_offset + vernaux->vna_name);
                if (strcmp(name, version) == 0)
                {
                    vernaux->vna_flags |= VER_FLG_WEAK;
                    found = 1;
                }
                aux += vernaux->vna_next;
            }
            need += verneed->vn_next;
        }
    }
    if (!found)
    {
        fprintf(stderr, "weaken_version: %s: no requirement on version %s\n", file, version);
        return 1;
    }
    fseek(f, 0, SEEK_SET);
    if (fwrite(image, 1, (size_t)size, f) != (size_t)size || fclose(f) != 0) return fail(file, "cannot write");
    return 0;
}
