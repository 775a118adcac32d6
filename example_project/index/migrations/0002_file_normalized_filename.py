"""File.normalized_filename: duplicate uploads are caught whatever the spelling of the name.

Existing rows are filled in; if two existing files normalise to the same name (uploaded before
this check existed), the later one keeps a ``#<id>`` suffix so the unique index can be built and
an operator can find both.
"""

import re

from django.db import migrations, models

_SEPARATORS = re.compile(r"[-_.]+")


def _normalise(filename):
    # A frozen copy of example_project.index.distfile.normalized_filename at this migration.
    from packaging.utils import canonicalize_version

    for extension in (".whl", ".tar.gz", ".zip"):
        if filename.endswith(extension):
            break
    else:
        return filename
    stem = filename[: -len(extension)]
    if extension == ".whl":
        name, _, rest = stem.partition("-")
        version, _, rest = rest.partition("-")
        rest = [part.lower() for part in rest.split("-")] if rest else []
    else:
        name, _, version = stem.rpartition("-")
        rest = []
    try:
        version = canonicalize_version(version)
    except Exception:  # keep an odd legacy name as it is
        pass
    name = _SEPARATORS.sub("-", name).lower().replace("-", "_")
    return "-".join([name, version, *rest]) + extension


def fill(apps, schema_editor):
    File = apps.get_model("index", "File")
    seen = set()
    for pk, filename in File.objects.order_by("pk").values_list("pk", "filename"):
        normalized = _normalise(filename)
        if normalized in seen:
            normalized = f"{normalized}#{pk}"
        seen.add(normalized)
        File.objects.filter(pk=pk).update(normalized_filename=normalized[:300])


class Migration(migrations.Migration):
    dependencies = [
        ("index", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="file",
            name="normalized_filename",
            field=models.CharField(editable=False, max_length=300, null=True),
        ),
        migrations.RunPython(fill, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="file",
            name="normalized_filename",
            field=models.CharField(
                editable=False,
                help_text="The filename with its name and version normalised: 'Kit-2.0.tar.gz' "
                "and 'kit-2.0.tar.gz' are the same file.",
                max_length=300,
                unique=True,
            ),
        ),
    ]
